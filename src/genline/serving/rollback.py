"""Roll back: make the previous version serve again, with the same canary as a publish."""

from __future__ import annotations

from pathlib import Path

from genline.control import error_message
from genline.serving import repository as repo_mod
from genline.serving.canary import canary
from genline.serving.reconcile import reload_or_unload
from genline.serving.registry import Registry
from genline.serving.target import (
    PublishError,
    Target,
    alert,
    check_ready_or_raise,
    connect,
    publish_lock,
    reconcile_or_raise,
)


def rollback(target: Target = Target()) -> tuple[int, int]:
    """Make the previous version serve again (with the same canary).

    Returns:
        (rolled_back_version, now_serving_version)
    """
    repo = Path(target.repository)
    repo_mod.check_repository(repo, target.model)
    registry = Registry(target.registry_path)
    server = connect(target)
    try:
        check_ready_or_raise(server)
        with publish_lock(repo):
            # an interrupted publish is never rolled back to
            reconcile_or_raise(target, server, registry)
            current = registry.serving(repo, target.model)
            if current is None or current not in registry.in_state(repo, target.model, "serving"):
                raise PublishError(f"no serving version of {target.model} to roll back from")
            target_version = registry.previous_version(repo, target.model, current)
            if target_version is None:
                raise PublishError(f"version {current} has no previous version to roll back to")
            repo_mod.quarantine(repo, target.model, current, "rolled back by genline rollback")
            try:
                server.load()
                canary(
                    server,
                    target_version,
                    registry.serving_meta(repo, target.model, target_version) or {},
                )
            except Exception as exc:
                repo_mod.restore(repo, target.model, current)
                try:
                    reload_or_unload(server, repo)
                except Exception:
                    pass
                alert(
                    target,
                    f"rollback of {target.model} from {current} to {target_version} "
                    f"failed: {error_message(exc)}",
                    {"current": current},
                )
                raise PublishError(
                    f"rollback to {target_version} failed ({error_message(exc)}); "
                    f"{current} restored"
                ) from exc
            registry.record(
                repo,
                target.model,
                "rolled_back",
                current,
                state="rolled_back",
                reason=f"rolled back to {target_version}",
            )
            registry.record(
                repo,
                target.model,
                "serving_again",
                target_version,
                serving=target_version,
                state="serving",
            )
            return current, target_version
    finally:
        server.close()
