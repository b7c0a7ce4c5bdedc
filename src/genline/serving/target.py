"""What publish and rollback share: the target, their error, the publish lock, the server
connection and the reconciliation every one of them starts with."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from genline import contract
from genline.alerts import send_alert
from genline.control import ControlClient, ControlError
from genline.serving import repository as repo_mod
from genline.serving.reconcile import ReconcileError, reconcile, reload_or_unload
from genline.serving.registry import Registry


class PublishError(RuntimeError):
    """Publishing or rolling back failed; the previous version keeps serving."""

    def __init__(self, message: str, version: int | None = None):
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class Target:
    """Where to publish: the repository on disk and the server that serves it."""

    repository: Path = Path("triton_repo")
    url: str = "127.0.0.1:8001"
    model: str = contract.MODEL_NAME
    run_dir: Path | None = None  # for the admin token; default genline.paths.run_dir()
    registry_path: Path | None = None
    profile_dir: Path | None = None
    alert_dir: Path | None = None
    load_timeout_s: float = 120.0


@contextmanager
def publish_lock(repository: Path) -> Iterator[None]:
    """Hold the repository's publish lock (one publish or rollback at a time)."""
    lock_dir = repository / repo_mod.STAGING  # git-ignored, same filesystem
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "publish.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def connect(target: Target) -> ControlClient:
    """A control client for the target's server and model."""
    return ControlClient(
        target.url, target.model, run_dir=target.run_dir, load_timeout_s=target.load_timeout_s
    )


def check_ready_or_raise(server: ControlClient) -> None:
    """Raise PublishError unless the server is reachable and ready."""
    try:
        server.check_ready()
    except ControlError as exc:
        raise PublishError(str(exc)) from exc


def reconcile_or_raise(target: Target, server: ControlClient, registry: Registry) -> list[str]:
    """`reconcile.reconcile` for the target (lock held), its failure as a PublishError."""
    try:
        return reconcile(Path(target.repository), server, registry, target.alert_dir)
    except ReconcileError as exc:
        raise PublishError(str(exc)) from exc


def alert(target: Target, summary: str, details: dict) -> None:
    """A critical `serving.publish` alert to the target's alert sink."""
    send_alert(
        "serving.publish", summary, severity="critical", details=details, sink_dir=target.alert_dir
    )


REFUSED_KIND = "publish.refused"


def refused_alert(
    target: Target, model_dir: Path, reason_kind: str, summary: str, details: dict
) -> None:
    """A warning for a publish refused before any version number was assigned (a user error
    that changes nothing in serving). One incident per (model, model directory, reason kind):
    refusing the same directory for the same reason again updates it.
    """
    send_alert(
        "serving.publish",
        summary,
        severity="warning",
        details={**details, "reason_kind": reason_kind},
        sink_dir=target.alert_dir,
        kind=REFUSED_KIND,
        model=target.model,
        subject=f"{model_dir}:{reason_kind}",
    )


def quarantine_failed(
    target: Target,
    server: ControlClient | None,
    version: int,
    reason: str,
    registry: Registry,
    previous: int | None,
) -> PublishError:
    """A version that failed after it was assigned: quarantine it, make sure the previous
    version serves again, alert; the PublishError to raise."""
    repo = Path(target.repository)
    where = repo_mod.quarantine(repo, target.model, version, reason)
    restored = None
    if server is not None:
        try:
            reload_or_unload(server, repo)  # without N: the latest remaining versions serve
            restored = server.loaded_versions()
        except Exception as exc:
            reason = f"{reason}; reloading the previous version also failed: {exc}"
    registry.record(repo, target.model, "quarantined", version, state="quarantined", reason=reason)
    alert(
        target,
        f"publish of {target.model} version {version} failed: {reason}",
        {
            "version": version,
            "quarantine": str(where),
            "previous": previous,
            "loaded_after": restored,
        },
    )
    return PublishError(
        f"version {version} quarantined ({where}): {reason}; still serving: {restored or previous}",
        version,
    )
