"""The admin token that guards Triton's repository-control API (load, unload, index).

Triton restricts those endpoints to callers presenting the admin header; its token lives in the
server's run dir (mode 0600), so the API stays unreachable beyond loopback even if bound wider.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_HEADER = "genline-admin-key"
TOKENFILE = "triton_admin_token"
RESTRICTED_GRPC = "model-repository,logging,trace"
RESTRICTED_HTTP = "model-repository,logging,trace"


def admin_token(run_dir: Path, create: bool = False) -> str | None:
    """The admin token of the server started from `run_dir` (created, mode 0600, if asked)."""
    path = run_dir / TOKENFILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if not create:
        return None
    token = secrets.token_hex(16)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def admin_headers(run_dir: Path | None = None, protocol: str = "grpc") -> dict[str, str]:
    """Headers that unlock the repository-control API of a server started from `run_dir`.

    Triton's gRPC frontend expects the key prefixed with `triton-grpc-protocol-`; HTTP takes it
    as given.
    """
    from genline.paths import run_dir as default_run_dir

    token = admin_token(Path(run_dir) if run_dir is not None else default_run_dir())
    if not token:
        return {}
    key = f"triton-grpc-protocol-{ADMIN_HEADER}" if protocol == "grpc" else ADMIN_HEADER
    return {key: token}
