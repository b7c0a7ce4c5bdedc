# syntax=docker/dockerfile:1.7
# The genline project image (CPU): every Kubeflow component, the PyTorchJob trainer and the
# Dagster code location run from it. Its name and tag are components/image.py PROJECT_IMAGE.
#   docker build -t ghcr.io/genline/genline:0.1.0 .
#   podman build -t ghcr.io/genline/genline:0.1.0 .   (or: buildah bud ...)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU wheel index, so the resolver below never pulls the CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ src/
COPY components/ components/
COPY pipelines/ pipelines/
# dagster-postgres and dagster-k8s are what the Helm chart's instance (PostgreSQL storage,
# K8sRunLauncher) needs inside the code-location image; they follow the dagster 1.13 line.
RUN pip install . "dagster-postgres>=0.29,<0.30" "dagster-k8s>=0.29,<0.30" \
 && python -c "import genline, components, pipelines, kfp, dagster, torch; print('ok', torch.__version__)"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="genline" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="genline: versioned data -> Kubeflow training with a quality gate -> ONNX -> Triton" \
      org.opencontainers.image.licenses="Apache-2.0"
# git: DVC restores dataset versions from the repository's .dvc files.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --create-home genline \
 && install -d -o genline -g genline /var/lib/genline /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=genline:genline dagster_project/ dagster_project/
COPY --chown=genline:genline triton_repo/ triton_repo/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GENLINE_HOME=/var/lib/genline \
    OMP_NUM_THREADS=2
USER 1000
# Kubeflow runs component commands; the PyTorchJob runs `python -m genline.distributed`;
# Dagster runs `dagster api grpc --module-name dagster_project.definitions`.
CMD ["genline", "--help"]
