"""The `tritonserver` command line and environment for one ServerConfig.

What the binary is given (see genline.serving.server's docstring for why): explicit model control,
loopback addresses by default, the restricted repository-control API behind the admin header, the
python-backend shared-memory prefix, LD_LIBRARY_PATH for its libraries, the venv's bin/ first on
PATH so the stub finds genline, and the prediction-log directory.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from genline.serving.admin import ADMIN_HEADER, RESTRICTED_GRPC, RESTRICTED_HTTP
from genline.serving.install import TritonInstall

if TYPE_CHECKING:
    from genline.serving.server import ServerConfig


def build_command(
    cfg: ServerConfig, install: TritonInstall, backend_dir: Path, token: str, load_model: bool
) -> list[str]:
    repo = Path(cfg.repository).resolve()
    shm_prefix = f"genline{os.getpid()}x{secrets.token_hex(3)}"
    cmd = [
        str(install.binary),
        f"--model-repository={repo}",
        f"--backend-directory={backend_dir}",
        "--model-control-mode=explicit",
        "--disable-auto-complete-config",
        "--strict-readiness=false",  # a rejected version must not unready a serving pod
        f"--exit-timeout-secs={cfg.exit_timeout_s}",
        f"--http-address={cfg.host}",
        f"--http-port={cfg.http_port}",
        f"--grpc-address={cfg.host}",
        f"--grpc-port={cfg.grpc_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        f"--metrics-address={cfg.host}",
        f"--metrics-port={cfg.metrics_port}",
        f"--grpc-restricted-protocol={RESTRICTED_GRPC}:{ADMIN_HEADER}={token}",
        f"--http-restricted-api={RESTRICTED_HTTP}:{ADMIN_HEADER}={token}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        f"--log-verbose={cfg.log_verbose}",
    ]
    if cfg.model_config_name:
        cmd.append(f"--model-config-name={cfg.model_config_name}")
    if load_model:
        cmd.append(f"--load-model={cfg.model}")
    cmd.extend(cfg.extra_args)
    return cmd


def server_env(install: TritonInstall, cfg: ServerConfig) -> dict[str, str]:
    from genline.serving import spool

    env = os.environ.copy()
    libs = str(install.libs)
    env["LD_LIBRARY_PATH"] = (
        f"{env['LD_LIBRARY_PATH']}:{libs}" if env.get("LD_LIBRARY_PATH") else libs
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env[spool.DIR_ENV] = str(cfg.resolved_predlog_dir())
    env.pop("PYTHONPATH", None)  # ignored by the stub anyway; avoid surprises in helpers
    return env
