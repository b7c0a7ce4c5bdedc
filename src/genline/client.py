"""A small client for apps: generate images from a genline Triton server over gRPC.

    from genline.client import GenlineClient
    with GenlineClient("127.0.0.1:8001") as client:
        out = client.generate([7] * 16, seed=1)
        out.images          # (16, C, H, W) float32 in [0, 1]
        out.model_version   # the version that actually served the request

Deadlines: every attempt carries `timeout_s` as its gRPC deadline (and, as the request parameter
`genline_deadline`, the epoch time it expires, so the server can log an expired deadline as
DEADLINE_EXCEEDED rather than a bare CANCELLED), and all attempts together stay within
`deadline_s`. Retries happen on UNAVAILABLE (server restarting, connection refused) and on the
NOT_FOUND "no available versions" of a server shutting down, never on bad input or deadline
expiry, with the same request id every time so the prediction log
deduplicates them.

Large requests: more labels than the model's `max_batch_size` (read once from the model config)
are sent as consecutive chunks of at most that size, request ids `<id>-0`, `<id>-1`, ..., and
the images come back concatenated in the order of `labels`. Every chunk gets the full
`timeout_s` and its own retries; `deadline_s` bounds each chunk, not their sum.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from genline import contract

RETRYABLE = ("StatusCode.UNAVAILABLE",)
# Triton answers NOT_FOUND with this while a shutting-down server has already unloaded the model
# (measured on 2.51 between SIGTERM and the gRPC endpoint closing): retried like UNAVAILABLE.
NO_VERSIONS = "has no available versions"
DEADLINE_PARAM = contract.DEADLINE_PARAM


def infer_inputs(labels: np.ndarray, z: np.ndarray) -> list:
    """The generator's gRPC inputs for one request (what every genline caller sends).

    Over Triton, `label` travels as INT64 [B, 1] (a batched input needs a non-batch dimension;
    the config reshapes it to the [B] the graph expects).

    Args:
        labels: (B,) int64 class indices.
        z: (B, latent_dim) float32 latent rows.

    Returns:
        `tritonclient.grpc.InferInput`s for `contract.INPUT_LABEL` and `contract.INPUT_Z`.
    """
    import tritonclient.grpc as grpcclient

    labels = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1, 1)  # (B, 1)
    z = np.ascontiguousarray(z, dtype=np.float32)  # (B, latent_dim)
    inputs = [
        grpcclient.InferInput(contract.INPUT_LABEL, list(labels.shape), "INT64"),
        grpcclient.InferInput(contract.INPUT_Z, list(z.shape), "FP32"),
    ]
    inputs[0].set_data_from_numpy(labels)
    inputs[1].set_data_from_numpy(z)
    return inputs


def served_version(result) -> int:
    """The model version that answered an inference result (`InferResult`)."""
    return int(result.get_response().model_version)


class GenerationError(RuntimeError):
    """The server refused or failed the request. `.status` is the gRPC status name."""

    def __init__(
        self,
        message: str,
        status: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ):
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.attempts = attempts


@dataclass(frozen=True)
class Generation:
    images: np.ndarray  # (B, C, H, W) float32 in [0, 1]
    labels: np.ndarray  # (B,) int64
    model_version: int
    request_id: str
    attempts: int


class GenlineClient:
    """gRPC client for the served generator.

    Args:
        url: host:port of Triton's gRPC endpoint.
        model: served model name.
        timeout_s: per-attempt deadline.
        deadline_s: overall budget across retries.
        retries: extra attempts after an UNAVAILABLE error.
        backoff_s: first backoff; doubles per retry.
    """

    def __init__(
        self,
        url: str = "127.0.0.1:8001",
        model: str = contract.MODEL_NAME,
        *,
        timeout_s: float = 10.0,
        deadline_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
    ):
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self.url = url
        self.model = model
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = grpcclient.InferenceServerClient(url)
        self._latent_dim: int | None = None
        self._max_batch: int | None = None

    def __enter__(self) -> GenlineClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def latent_dim(self) -> int:
        if self._latent_dim is None:
            meta = self._call(
                lambda t: self._client.get_model_metadata(
                    self.model, as_json=True, client_timeout=t
                )
            )
            for tensor in meta["inputs"]:
                if tensor["name"] == contract.INPUT_Z:
                    self._latent_dim = int(tensor["shape"][-1])
            if self._latent_dim is None:
                raise GenerationError(f"model {self.model} has no input {contract.INPUT_Z!r}")
        return self._latent_dim

    def max_batch_size(self) -> int:
        """The served model's `max_batch_size` (from its config; 0 means no batching axis).

        Raises:
            GenerationError: the server cannot be reached or does not serve `model`.
        """
        if self._max_batch is None:
            cfg = self._call(
                lambda t: self._client.get_model_config(self.model, as_json=True, client_timeout=t)
            )
            # as_json renders int fields as ints, but protobuf's JSON may omit a zero value
            self._max_batch = int(cfg.get("config", {}).get("max_batch_size", 0) or 0)
        return self._max_batch

    def generate(
        self,
        labels,
        *,
        z: np.ndarray | None = None,
        seed: int | None = None,
        version: int | str | None = None,
        request_id: str | None = None,
    ) -> Generation:
        """Generate one image per label.

        Args:
            labels: class indices, shape (B,).
            z: latent noise (B, latent_dim) float32; drawn from `seed` when omitted.
            seed: seed for z (also logged server-side).
            version: pin a model version (a positive integer); default is whatever serves.
            request_id: idempotency key; a fresh uuid when omitted.
        """
        if version is not None:
            from genline.serving.repository import RepositoryError, check_version

            try:
                version = check_version(version)
            except RepositoryError as exc:
                raise GenerationError(str(exc), "INVALID_ARGUMENT") from exc
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size == 0:
            raise GenerationError("no labels: ask for at least one image", "INVALID_ARGUMENT")
        if z is None:
            rng = np.random.default_rng(seed)
            z = rng.standard_normal((len(labels), self.latent_dim())).astype(np.float32)
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or len(z) != len(labels):
            raise GenerationError(
                f"z must have shape [{len(labels)}, latent_dim] (one row per label), "
                f"got {list(z.shape)}",
                "INVALID_ARGUMENT",
            )
        rid = request_id or uuid.uuid4().hex
        limit = self.max_batch_size()
        if limit <= 0 or len(labels) <= limit:
            return self._generate_one(labels, z, seed, version, rid)
        parts = [
            self._generate_one(labels[i : i + limit], z[i : i + limit], seed, version, f"{rid}-{k}")
            for k, i in enumerate(range(0, len(labels), limit))
        ]
        versions = {p.model_version for p in parts}
        if len(versions) > 1 and version is None:
            # A publish or rollback landed between chunks: the images would mix two models.
            raise GenerationError(
                f"the chunks of request {rid} were served by versions {sorted(versions)} (a "
                "version swap happened meanwhile); retry, or pin a version",
                "ABORTED",
                rid,
                sum(p.attempts for p in parts),
            )
        return Generation(
            images=np.concatenate([p.images for p in parts]),
            labels=labels,
            model_version=parts[0].model_version,
            request_id=rid,
            attempts=sum(p.attempts for p in parts),
        )

    def _generate_one(
        self, labels: np.ndarray, z: np.ndarray, seed, version, rid: str
    ) -> Generation:
        """One inference request (at most max_batch_size labels), with deadline and retries."""
        inputs = infer_inputs(labels, z)
        outputs = [self._grpc.InferRequestedOutput(contract.OUTPUT_IMAGE)]
        attempts = {"n": 0}

        def call(timeout):
            attempts["n"] += 1
            params = {DEADLINE_PARAM: time.time() + timeout}
            if seed is not None:
                params["seed"] = int(seed)
            return self._client.infer(
                self.model,
                inputs,
                model_version="" if version is None else str(version),
                outputs=outputs,
                request_id=rid,
                client_timeout=timeout,
                parameters=params,
            )

        result = self._call(call, rid)
        return Generation(
            images=result.as_numpy(contract.OUTPUT_IMAGE),
            labels=labels,
            model_version=served_version(result),
            request_id=rid,
            attempts=attempts["n"],
        )

    def _call(self, fn, request_id: str | None = None):
        from tritonclient.utils import InferenceServerException

        start = time.monotonic()
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            left = self.deadline_s - (time.monotonic() - start)
            if left <= 0:
                raise GenerationError(
                    f"deadline of {self.deadline_s}s exceeded",
                    "DEADLINE_EXCEEDED",
                    request_id,
                    attempt,
                )
            try:
                return fn(min(self.timeout_s, left))
            except InferenceServerException as exc:
                status = str(exc.status() or "")
                unloaded = status == "StatusCode.NOT_FOUND" and NO_VERSIONS in str(exc.message())
                if (status in RETRYABLE or unloaded) and attempt < self.retries:
                    time.sleep(min(delay, max(0.0, left)))
                    delay *= 2
                    continue
                raise GenerationError(
                    f"{status or 'error'}: {exc.message()}",
                    status.replace("StatusCode.", "") or None,
                    request_id,
                    attempt + 1,
                ) from exc
        raise AssertionError("unreachable")
