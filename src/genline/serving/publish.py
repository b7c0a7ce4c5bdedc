"""Publish a gated model into the running Triton, with a canary; roll back; quarantine.

publish(model_dir):
  1. refuse unless the directory is one passed, stamped, self-contained training run
     (genline.serving.publish_checks); nothing is assigned or written for a refused directory;
  2. under the publish lock, reconcile what a publish that died left behind (see _reconcile);
  3. if this ONNX (same sha256, same classes and shapes) is the serving version already, return
     it: publishing is idempotent. If it is only an older, standby version, it is published
     again as a new version, so that "publish X" always ends with X serving (Triton serves the
     highest loaded version; reusing the old number would need a rollback of everything newer);
  4. refuse a class set (names or count) that differs from the serving version's unless
     `allow_class_change`: clients that send label 3 would silently get another class;
  5. stage the version in `<repo>/.staging/` (same filesystem), verify the staged files' sha256
     against the training outputs, record N as "staged" in the registry, then `rename` it
     atomically to a never-reused `<repo>/<m>/<N>`;
  6. `load_model` (Triton keeps serving the previous versions while N loads);
  7. canary: a request without a version pin must be answered by N with valid images;
  8. record the reference output profile of N on the fixed probe set, then mark N serving in the
     registry with its lineage (run id, checkpoint sha256, ONNX sha256, dataset, metrics, gate).
Any failure after N is assigned: N moves to `<repo>/<m>/quarantine/N`, the model is reloaded so
the previous version serves, the alert hook is called, and PublishError is raised.

Crash safety: genline.faults.kill_point marks "publish.after_stage", "publish.after_rename",
"publish.after_load" and "publish.after_canary"; a SIGKILL at any of them leaves a "staged"
registry entry that the next publish (or rollback) quarantines before doing anything else.

rollback(): quarantine the serving version (reason "rolled back"), reload, canary the previous.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from genline import contract
from genline.alerts import send_alert
from genline.faults import kill_point
from genline.fsutil import atomic_write_json, read_json, sha256_file
from genline.serving import repository as repo_mod
from genline.serving.publish_checks import (
    ModelDir,
    ModelDirError,
    class_change,
    read_model_dir,
)
from genline.serving.publish_checks import check_self_contained_onnx as check_self_contained
from genline.serving.registry import Registry

BACKEND_MODEL = Path(__file__).with_name("backend_model.py")


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


@dataclass(frozen=True)
class PublishResult:
    """What publish did.

    Attributes:
        version: the version that serves the model now.
        previous: the version that served before this call (== version when nothing changed).
        profile_path: the reference output profile of `version`.
        lineage: what the registry records for `version`.
        created: False when this ONNX already served and no version was created.
        reconciled: what was cleaned up after an earlier publish that died, one line each.
    """

    version: int
    previous: int | None
    profile_path: Path
    lineage: dict[str, Any]
    created: bool = True
    reconciled: list[str] = field(default_factory=list)


@contextmanager
def _publish_lock(repository: Path):
    lock_dir = repository / repo_mod.STAGING  # git-ignored, same filesystem
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "publish.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Server:
    """Repository control + inference on the target server (admin header for control calls)."""

    def __init__(self, target: Target):
        import tritonclient.grpc as grpcclient

        from genline.serving.server import admin_headers

        self.g = grpcclient
        self.target = target
        self.client = grpcclient.InferenceServerClient(target.url)
        self.headers = admin_headers(target.run_dir)

    def check_ready(self) -> None:
        try:
            ready = self.client.is_server_ready(client_timeout=5)
        except Exception as exc:
            raise PublishError(
                f"Triton is not reachable at {self.target.url} ({exc}); start it with "
                "`genline serve --background`"
            ) from exc
        if not ready:
            raise PublishError(f"Triton at {self.target.url} is not ready")

    def load(self) -> None:
        self.client.load_model(
            self.target.model, headers=self.headers, client_timeout=self.target.load_timeout_s
        )

    def reload_or_unload(self) -> None:
        """Reload from what is on disk; with no version left, unload the model instead."""
        if repo_mod.versions(self.target.repository, self.target.model):
            self.load()
        else:
            self.client.unload_model(
                self.target.model, headers=self.headers, client_timeout=self.target.load_timeout_s
            )

    def loaded_versions(self) -> list[int]:
        """Versions that are loaded and ready right now."""
        try:
            meta = self.client.get_model_metadata(self.target.model, as_json=True)
        except Exception:
            return []
        out = []
        for v in meta.get("versions", []):
            try:
                if self.client.is_model_ready(self.target.model, str(v)):
                    out.append(int(v))
            except Exception:
                pass
        return sorted(out)

    def infer_chunked(self, labels: np.ndarray, z: np.ndarray, version: int, chunk: int = 32):
        images = []
        for i in range(0, len(labels), chunk):
            served, img = self.infer(labels[i : i + chunk], z[i : i + chunk], version)
            if served != version:
                raise PublishError(f"probe answered by version {served}, expected {version}")
            images.append(img)
        return np.concatenate(images)

    def infer(self, labels: np.ndarray, z: np.ndarray, version: int | None = None):
        inputs = [
            self.g.InferInput(contract.INPUT_LABEL, [len(labels), 1], "INT64"),
            self.g.InferInput(contract.INPUT_Z, list(z.shape), "FP32"),
        ]
        inputs[0].set_data_from_numpy(labels.reshape(-1, 1))
        inputs[1].set_data_from_numpy(z)
        res = self.client.infer(
            self.target.model,
            inputs,
            model_version="" if version is None else str(version),
            request_id=f"genline-canary-{time.time_ns()}",
            client_timeout=30,
        )
        return int(res.get_response().model_version), res.as_numpy(contract.OUTPUT_IMAGE)

    def close(self) -> None:
        self.client.close()


def _check_images(images: np.ndarray, n: int, image_shape: list[int]) -> None:
    if images is None or list(images.shape) != [n, *image_shape]:
        got = None if images is None else list(images.shape)
        raise PublishError(f"canary: image shape {got} != {[n, *image_shape]}")
    if not np.isfinite(images).all():
        raise PublishError("canary: images contain NaN/Inf")
    if images.min() < -1e-5 or images.max() > 1 + 1e-5:
        raise PublishError(
            f"canary: pixel values outside [0, 1] ({images.min():.4f}..{images.max():.4f})"
        )
    if float(images.std()) == 0.0:
        raise PublishError("canary: every pixel of every image is identical")


def canary(server: _Server, expect_version: int, meta: dict[str, Any]) -> None:
    """Unpinned request: must be served by `expect_version` with valid images."""
    from genline.serving.profile import ProbeSet

    probe = ProbeSet(int(meta["num_classes"]), int(meta["latent_dim"]), per_class=1, seed=7)
    labels, z = probe.arrays()
    version, images = server.infer(labels, z)
    if version != expect_version:
        raise PublishError(
            f"canary: response came from version {version}, expected {expect_version}"
        )
    _check_images(images, len(labels), list(meta["image_shape"]))


def _stage(model_dir: Path, export: dict, stage: Path) -> dict[str, str]:
    """Copy the served files into `stage` and verify each against export.json's sha256."""
    variant = export.get("serving_variant", contract.ONNX_FP32)
    files = export["files"]
    plan = {contract.ONNX_FP32: variant}
    if contract.EVALUATOR_ONNX in files:
        plan[contract.EVALUATOR_ONNX] = contract.EVALUATOR_ONNX
    digests: dict[str, str] = {}
    for dest_name, src_name in plan.items():
        src = model_dir / src_name
        if src_name not in files:
            raise PublishError(f"export.json records no sha256 for {src_name}")
        if not src.is_file():
            raise PublishError(f"{src} is missing")
        shutil.copyfile(src, stage / dest_name)
        digest = sha256_file(stage / dest_name)
        if digest != files[src_name]:
            raise PublishError(
                f"sha256 of {src_name} ({digest[:12]}...) does not match the "
                f"training output recorded in export.json ({files[src_name][:12]}...)"
            )
        digests[dest_name] = digest
    shutil.copyfile(BACKEND_MODEL, stage / "model.py")
    return digests


def _check_against_config(repository: Path, model: str, onnx_path: Path) -> None:
    """The committed config.pbtxt must describe this graph (names, dtypes, shapes)."""
    from genline.serving.config import check_config_against_onnx, parse_config

    config = parse_config(repo_mod.model_dir(repository, model) / "config.pbtxt")
    try:
        problems = check_config_against_onnx(config, onnx_path)
    except Exception:  # an unreadable ONNX: Triton's load reports it and the version is quarantined
        return
    if problems:
        raise PublishError(
            "the model does not match config.pbtxt (regenerate it with "
            "`genline serve --write-config --model DIR`): " + "; ".join(problems)
        )


def _fsync_dir(path: Path) -> None:
    for p in [*path.iterdir(), path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alert(target: Target, summary: str, details: dict) -> None:
    send_alert(
        "serving.publish", summary, severity="critical", details=details, sink_dir=target.alert_dir
    )


def _fail(
    target: Target,
    server: _Server | None,
    version: int,
    reason: str,
    registry: Registry,
    previous: int | None,
) -> PublishError:
    """Quarantine `version`, make sure the previous version serves again, alert."""
    repo = Path(target.repository)
    where = repo_mod.quarantine(repo, target.model, version, reason)
    restored = None
    if server is not None:
        try:
            server.reload_or_unload()  # without N: the latest remaining versions serve
            restored = server.loaded_versions()
        except Exception as exc:
            reason = f"{reason}; reloading the previous version also failed: {exc}"
    registry.record(repo, target.model, "quarantined", version, state="quarantined", reason=reason)
    _alert(
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


def _onnx_sha256(md: ModelDir) -> str | None:
    """sha256 of the served ONNX file as it is on disk, if it matches export.json's record."""
    path = md.path / md.serving_variant
    if not path.is_file():
        return None
    digest = sha256_file(path)
    return digest if digest == md.export["files"].get(md.serving_variant) else None


def _served_meta(repository: Path, model: str, version: int) -> dict[str, Any] | None:
    path = repo_mod.model_dir(repository, model) / str(version) / "serving.json"
    return read_json(path) if path.is_file() else None


def _same_model(
    registry: Registry, repository: Path, model: str, onnx_sha256: str, meta: dict[str, Any]
) -> int | None:
    """The newest serving or standby version holding this ONNX with the same classes/shapes."""
    present = set(repo_mod.versions(repository, model))
    for version in reversed(registry.in_state(repository, model, "serving", "standby")):
        info = registry.version_info(repository, model, version)
        old = _served_meta(repository, model, version)
        if version not in present or old is None:
            continue
        if info.get("lineage", {}).get("onnx_sha256") != onnx_sha256:
            continue
        same_shape = all(old.get(k) == meta[k] for k in ("latent_dim", "image_shape"))
        if same_shape and class_change(meta, old, version) is None:
            return version
    return None


def _reconcile(target: Target, server: _Server, registry: Registry) -> list[str]:
    """Clean up after a publish that died (call with the publish lock held).

    The registry is the record of version state. A version it holds as "staged" never reached
    the end of its publish: its canary may not have run, yet Triton may be serving it (a kill
    after load). It is quarantined, and the model reloaded so that the recorded serving version
    serves again. A version directory the registry has no record of, in a repository the
    registry knows, never passed a canary either and is quarantined too. Staging directories
    are the partial copies of dead publishes (the lock is held, so no live one) and are removed.

    Returns:
        One line per thing cleaned up (empty when there was nothing to do).
    """
    repo, model = Path(target.repository), target.model
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
            server.reload_or_unload()
        except Exception as exc:
            raise PublishError(
                f"reconciling an interrupted publish: reloading {model} failed: {_msg(exc)}"
            ) from exc
    if notes:
        send_alert(
            "serving.publish",
            f"reconciled an interrupted publish of {model}: " + "; ".join(notes),
            severity="warning",
            details={"notes": notes},
            sink_dir=target.alert_dir,
        )
    return notes


def _already_serving(
    target: Target, server: _Server, registry: Registry, version: int, notes: list[str]
) -> PublishResult:
    """The idempotent outcome: check with a canary that `version` really serves, change nothing."""
    repo = Path(target.repository)
    meta = _served_meta(repo, target.model, version) or {}
    try:
        canary(server, version, meta)
    except Exception as exc:
        _alert(
            target,
            f"{target.model} version {version} is recorded as serving but fails its canary",
            {"version": version},
        )
        raise PublishError(
            f"this model is already version {version}, recorded as serving, but its canary "
            f"failed ({_msg(exc)}); nothing was changed (see `genline rollback`)",
            version,
        ) from exc
    info = registry.version_info(repo, target.model, version)
    registry.record(repo, target.model, "publish_unchanged", version)
    lineage = info.get("lineage", {})
    return PublishResult(
        version=version,
        previous=version,
        profile_path=Path(lineage.get("reference_profile", "")),
        lineage=lineage,
        created=False,
        reconciled=notes,
    )


def publish(
    model_dir: str | Path, target: Target = Target(), *, allow_class_change: bool = False
) -> PublishResult:
    """Publish a gated model directory so that it serves; see the module docstring.

    Args:
        model_dir: a directory written by `genline train` (gate passed, stamped, exported).
        target: the repository and server to publish into.
        allow_class_change: publish even when the model's classes (names or count) differ from
            the serving version's.

    Returns:
        The serving version; `created` is False when this ONNX already served.

    Raises:
        PublishError: the directory was refused (nothing published), or the new version failed
            and was quarantined (the previous version serves); `version` says which.
    """
    from genline.serving.profile import ProbeSet, build_profile, save_profile

    model_dir = Path(model_dir).resolve()
    repo = Path(target.repository)
    registry = Registry(target.registry_path)
    try:
        repo_mod.check_model_name(target.model)
        repo_mod.check_repository(repo, target.model)
        md = read_model_dir(model_dir)
    except (ModelDirError, repo_mod.RepositoryError) as exc:
        _alert(target, f"publish of {model_dir} refused: {exc}", {"model_dir": str(model_dir)})
        raise PublishError(str(exc)) from exc
    meta = md.meta
    onnx_sha256 = _onnx_sha256(md)
    server = _Server(target)
    try:
        try:
            server.check_ready()
        except PublishError as exc:
            _alert(target, str(exc), {"model_dir": str(model_dir)})
            raise
        with _publish_lock(repo):
            notes = _reconcile(target, server, registry)
            previous = registry.serving(repo, target.model)
            loaded_before = server.loaded_versions()
            if previous is None and loaded_before:
                previous = loaded_before[-1]
            same = None
            if onnx_sha256 is not None:
                same = _same_model(registry, repo, target.model, onnx_sha256, meta)
            if same is not None and same == previous:
                return _already_serving(target, server, registry, same, notes)
            old_meta = None if previous is None else _served_meta(repo, target.model, previous)
            why = None if old_meta is None else class_change(meta, old_meta, previous)
            if why and not allow_class_change:
                message = (
                    f"{model_dir} refused: {why}; clients sending a label index would get "
                    "another class. Pass --allow-class-change (publish(..., "
                    "allow_class_change=True)) to replace it"
                )
                _alert(target, message, {"model_dir": str(model_dir), "serving": previous})
                raise PublishError(message)
            version = repo_mod.next_version(
                repo, target.model, registry.known_versions(repo, target.model)
            )
            stage = repo_mod.staging_dir(repo)
            try:
                digests = _stage(md.path, md.export, stage)
                _check_against_config(repo, target.model, stage / contract.ONNX_FP32)
                for name in digests:  # the bytes that will be served, not the source's
                    check_self_contained(stage / name)
            except (PublishError, ModelDirError, OSError) as exc:
                repo_mod.quarantine(repo, target.model, version, str(exc), source=stage)
                registry.record(
                    repo, target.model, "quarantined", version, state="quarantined", reason=str(exc)
                )
                _alert(
                    target,
                    f"publish of {target.model} version {version} failed: {exc}",
                    {"version": version, "model_dir": str(model_dir)},
                )
                raise PublishError(f"version {version} quarantined: {exc}", version) from exc
            lineage = {
                "model_dir": str(model_dir),
                "run_id": md.run_id,
                "checkpoint_sha256": md.checkpoint_sha256,
                "dataset_fingerprint": md.dataset.get("fingerprint")
                or md.export.get("dataset_fingerprint"),
                "classes": md.classes,
                "metrics": md.metrics,
                "gate": md.gate,
                "onnx_sha256": digests[contract.ONNX_FP32],
                "evaluator_sha256": digests.get(contract.EVALUATOR_ONNX),
                "serving_variant": md.serving_variant,
                "republished_from": same,
                "class_change_allowed_over": previous if why else None,
                "published_at": datetime.now(UTC).isoformat(),
            }
            atomic_write_json(
                stage / "serving.json",
                {**meta, "version": version, "model": target.model, "lineage": lineage},
            )
            _fsync_dir(stage)
            # recorded before the rename: from here on a crash leaves a record to reconcile
            registry.record(repo, target.model, "staged", version, state="staged", lineage=lineage)
            kill_point("publish.after_stage")
            dest = repo_mod.model_dir(repo, target.model) / str(version)
            os.rename(stage, dest)  # atomic: Triton never sees a half-copied version
            kill_point("publish.after_rename")
            try:
                server.load()
            except Exception as exc:
                raise _fail(
                    target, server, version, f"load failed: {_msg(exc)}", registry, previous
                ) from exc
            kill_point("publish.after_load")
            try:
                canary(server, version, meta)
                probe = ProbeSet(meta["num_classes"], meta["latent_dim"])
                labels, z = probe.arrays()
                images = server.infer_chunked(labels, z, version)
                profile = build_profile(
                    target.model, version, probe, images, dest / contract.EVALUATOR_ONNX
                )
                profile_path = save_profile(profile, target.profile_dir)
            except Exception as exc:
                raise _fail(
                    target, server, version, f"canary failed: {_msg(exc)}", registry, previous
                ) from exc
            kill_point("publish.after_canary")
            lineage["reference_profile"] = str(profile_path)
            registry.record(
                repo,
                target.model,
                "published",
                version,
                serving=version,
                state="serving",
                lineage=lineage,
            )
            return PublishResult(
                version=version,
                previous=previous,
                profile_path=profile_path,
                lineage=lineage,
                reconciled=notes,
            )
    finally:
        server.close()


def rollback(target: Target = Target()) -> tuple[int, int]:
    """Make the previous version serve again (with the same canary).

    Returns:
        (rolled_back_version, now_serving_version)
    """
    repo = Path(target.repository)
    repo_mod.check_repository(repo, target.model)
    registry = Registry(target.registry_path)
    server = _Server(target)
    try:
        server.check_ready()
        with _publish_lock(repo):
            _reconcile(target, server, registry)  # an interrupted publish is never rolled to
            present = repo_mod.versions(repo, target.model)
            current = registry.serving(repo, target.model) or (present[-1] if present else None)
            if current is None or current not in present:
                raise PublishError(f"no serving version of {target.model} to roll back from")
            older = [v for v in present if v < current]
            if not older:
                raise PublishError(f"version {current} has no previous version to roll back to")
            target_version = older[-1]
            repo_mod.quarantine(repo, target.model, current, "rolled back by genline rollback")
            try:
                server.load()
                meta = read_json(
                    repo_mod.model_dir(repo, target.model) / str(target_version) / "serving.json"
                )
                canary(server, target_version, meta)
            except Exception as exc:
                repo_mod.restore(repo, target.model, current)
                try:
                    server.reload_or_unload()
                except Exception:
                    pass
                _alert(
                    target,
                    f"rollback of {target.model} from {current} to {target_version} "
                    f"failed: {_msg(exc)}",
                    {"current": current},
                )
                raise PublishError(
                    f"rollback to {target_version} failed ({_msg(exc)}); {current} restored"
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


def _msg(exc: BaseException) -> str:
    m = getattr(exc, "message", None)
    text = m() if callable(m) else str(exc)
    return text.strip().splitlines()[0][:500] if text else type(exc).__name__
