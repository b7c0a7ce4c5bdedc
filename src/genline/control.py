"""The operator's gRPC client: repository control (load, unload) and pinned inference.

`genline.client.GenlineClient` is what apps use; this is what `genline publish` and `genline
rollback` use against the same server. Control calls carry the admin header whose token lives
in the server's run dir (`genline.serving.admin.admin_headers`); inference requests are built
by `genline.client.infer_inputs`, exactly as an app's are.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genline import contract
from genline.client import infer_inputs, served_version
from genline.serving.features import CANARY_PREFIX


class ControlError(RuntimeError):
    """The server is unreachable or not ready (the message says how to start it)."""


class ControlClient:
    """Repository control and inference on one model of one Triton server.

    Args:
        url: host:port of Triton's gRPC endpoint.
        model: the served model's name.
        run_dir: the server's run dir, for the admin token (default `genline.paths.run_dir()`).
        load_timeout_s: gRPC deadline of load and unload calls.
    """

    def __init__(
        self,
        url: str,
        model: str = contract.MODEL_NAME,
        *,
        run_dir: Path | None = None,
        load_timeout_s: float = 120.0,
    ):
        import tritonclient.grpc as grpcclient

        from genline.serving.admin import admin_headers

        self.url = url
        self.model = model
        self.load_timeout_s = load_timeout_s
        self.client = grpcclient.InferenceServerClient(url)
        self.headers = admin_headers(run_dir)

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_ready(self) -> None:
        """Raise ControlError unless the server answers and is ready."""
        try:
            ready = self.client.is_server_ready(client_timeout=5)
        except Exception as exc:
            raise ControlError(
                f"Triton is not reachable at {self.url} ({exc}); start it with "
                "`genline serve --background`"
            ) from exc
        if not ready:
            raise ControlError(f"Triton at {self.url} is not ready")

    def load(self) -> None:
        """(Re)load the model from what the repository holds on disk."""
        self.client.load_model(self.model, headers=self.headers, client_timeout=self.load_timeout_s)

    def unload(self) -> None:
        """Unload the model (every version)."""
        self.client.unload_model(
            self.model, headers=self.headers, client_timeout=self.load_timeout_s
        )

    def loaded_versions(self) -> list[int]:
        """Versions that are loaded and ready right now, ascending ([] when none or unknown)."""
        try:
            meta = self.client.get_model_metadata(self.model, as_json=True)
        except Exception:
            return []
        out = []
        for v in meta.get("versions", []):
            try:
                if self.client.is_model_ready(self.model, str(v)):
                    out.append(int(v))
            except Exception:
                pass
        return sorted(out)

    def infer(
        self,
        labels: np.ndarray,
        z: np.ndarray,
        version: int | None = None,
        *,
        request_prefix: str = CANARY_PREFIX,
    ) -> tuple[int, np.ndarray]:
        """One request, without retries (a canary must see the server as it is).

        Args:
            labels: (B,) int64.
            z: (B, latent_dim) float32.
            version: pin a version; None for whatever serves.
            request_prefix: starts the request id; the prediction log marks the row's `source`
                by it (`features.source_of`), so canary and profile requests are not app traffic.

        Returns:
            (the version that answered, images (B, C, H, W)).
        """
        res = self.client.infer(
            self.model,
            infer_inputs(labels, z),
            model_version="" if version is None else str(version),
            request_id=f"{request_prefix}{time.time_ns()}",
            client_timeout=30,
        )
        return served_version(res), res.as_numpy(contract.OUTPUT_IMAGE)

    def close(self) -> None:
        self.client.close()


def error_message(exc: BaseException) -> str:
    """The first line of a tritonclient (or any) exception's message, at most 500 characters."""
    m = getattr(exc, "message", None)
    text = m() if callable(m) else str(exc)
    return text.strip().splitlines()[0][:500] if text else type(exc).__name__
