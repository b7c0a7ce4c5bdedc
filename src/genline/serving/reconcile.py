"""Cleaning up after a publish that died, before the next publish or rollback does anything.

The registry is the record of version state. A version it holds as "staged" never reached the
end of its publish: its canary may not have run, yet Triton may be serving it (a kill after
load). It is quarantined, and the model reloaded so that the recorded serving version serves
again. A version directory the registry has no record of, in a repository the registry knows,
never passed a canary either and is quarantined too. Staging directories are the partial copies
of dead publishes (the publish lock is held, so no live one) and are removed.
"""

from __future__ import annotations

from pathlib import Path

from genline.alerts import send_alert
from genline.control import ControlClient, error_message
from genline.serving import repository as repo_mod
from genline.serving.registry import Registry


class ReconcileError(RuntimeError):
    """The model could not be reloaded after quarantining an interrupted publish."""


def reload_or_unload(server: ControlClient, repository: Path) -> None:
    """Reload the model from what is on disk; with no version directory left, unload it."""
    if repo_mod.versions(repository, server.model):
        server.load()
    else:
        server.unload()


def reconcile(
    repository: Path,
    server: ControlClient,
    registry: Registry,
    alert_dir: Path | None = None,
) -> list[str]:
    """Quarantine what interrupted publishes left (call with the publish lock held).

    Args:
        repository: the model repository.
        server: the server serving `server.model` from it.
        registry: the record of version state.
        alert_dir: where the warning alert goes (default sink when None).

    Returns:
        One line per thing cleaned up (empty when there was nothing to do).

    Raises:
        ReconcileError: reloading the model afterwards failed.
    """
    repo, model = Path(repository), server.model
    notes = []
    for leftover in repo_mod.staging_leftovers(repo):
        repo_mod.remove_tree(leftover)
        notes.append(f"removed the staging leftover {leftover.name} of an interrupted publish")
    present = set(repo_mod.versions(repo, model))
    changed = False
    for version in registry.in_state(repo, model, "staged"):
        reason = (
            f"the publish of version {version} was interrupted before it was marked serving "
            "(reconciled by the next publish)"
        )
        if version in present:
            where = repo_mod.quarantine(repo, model, version, reason)
            changed = True
            notes.append(f"quarantined version {version} ({where}): {reason}")
        else:
            notes.append(f"version {version} was never renamed into place: {reason}")
        registry.record(repo, model, "reconciled", version, state="quarantined", reason=reason)
    known = registry.known_versions(repo, model)
    if known:  # a registry that never saw this repository cannot judge its directories
        for version in sorted(present - known):
            reason = (
                f"version directory {version} has no record in the registry (a publish died "
                "before recording it, or it was copied in by hand) and never passed a canary"
            )
            where = repo_mod.quarantine(repo, model, version, reason)
            registry.record(repo, model, "reconciled", version, state="quarantined", reason=reason)
            changed = True
            notes.append(f"quarantined version {version} ({where}): {reason}")
    if changed:
        try:
            reload_or_unload(server, repo)
        except Exception as exc:
            raise ReconcileError(
                f"reconciling an interrupted publish: reloading {model} failed: "
                f"{error_message(exc)}"
            ) from exc
    if notes:
        send_alert(
            "serving.publish",
            f"reconciled an interrupted publish of {model}: " + "; ".join(notes),
            severity="warning",
            details={"notes": notes},
            sink_dir=alert_dir,
        )
    return notes
