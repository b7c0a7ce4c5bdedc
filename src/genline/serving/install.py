"""Where the `tritonserver` binary shipped in nvidia-pytriton, its libraries and the
python-backend stub for this Python are, and the backend directory Triton is given.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


class ServerError(RuntimeError):
    """Triton could not be started, stopped or reached (message says why and what to do)."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    libs: Path
    backend_lib_dir: Path  # holds libtriton_python.so and triton_python_backend_utils.py
    stub: Path


def find_triton() -> TritonInstall:
    """Locate the tritonserver binary, its libraries and the python-backend stub for this Python.

    Raises:
        ServerError: naming the missing piece and how to get it.
    """
    try:
        import pytriton
    except ImportError as exc:
        raise ServerError(
            "nvidia-pytriton is not installed (it ships the tritonserver binary): "
            "pip install nvidia-pytriton==0.7.0"
        ) from exc
    root = Path(pytriton.__file__).resolve().parent
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=root / "tritonserver" / "bin" / "tritonserver",
        libs=root.parent / "nvidia_pytriton.libs",
        backend_lib_dir=root / "tritonserver" / "backends" / "python",
        stub=root
        / "tritonserver"
        / "python_backend_stubs"
        / version
        / "triton_python_backend_stub",
    )
    if not install.binary.is_file() or not os.access(install.binary, os.X_OK):
        raise ServerError(f"tritonserver binary missing or not executable: {install.binary}")
    if not install.libs.is_dir():
        raise ServerError(f"Triton's shared libraries are missing: {install.libs}")
    if not (install.backend_lib_dir / "libtriton_python.so").is_file():
        raise ServerError(f"Triton's python backend is missing: {install.backend_lib_dir}")
    if not install.stub.is_file():
        raise ServerError(f"no python-backend stub for Python {version}: {install.stub}")
    return install


def prepare_backend_dir(install: TritonInstall, run_dir: Path) -> Path:
    """A backend directory (`<run_dir>/backends/python/...`) made of symlinks; idempotent."""
    python_dir = run_dir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": install.backend_lib_dir / "libtriton_python.so",
        "triton_python_backend_utils.py": install.backend_lib_dir
        / "triton_python_backend_utils.py",
        "triton_python_backend_stub": install.stub,
    }
    for name, target in links.items():
        link = python_dir / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        tmp = python_dir / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
    return run_dir / "backends"
