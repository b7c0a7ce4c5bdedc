"""Publish a gated model into the running Triton, with a canary; roll back; quarantine.

publish(model_dir):
  1. refuse unless the directory is one passed, stamped, self-contained training run
     (genline.serving.publish_checks); nothing is assigned or written for a refused directory;
  2. under the publish lock, reconcile what a publish that died left behind
     (genline.serving.reconcile);
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
  8. record the reference output profile of N on the fixed probe set (genline.serving.profile)
     and the staleness baseline against the data N was trained on, then mark N serving in the
     registry with its lineage (run id, checkpoint sha256, ONNX sha256, dataset, metrics, gate,
     profile and baseline paths).
Any failure after N is assigned: N moves to `<repo>/<m>/quarantine/N`, the model is reloaded so
the previous version serves, a critical `publish.failed` alert is raised, and PublishError is
raised. A refusal before N is assigned (steps 1 and 4) changes nothing in serving: it raises a
`publish.refused` warning, one incident per model directory and reason kind.

Crash safety: genline.faults.kill_point marks "publish.after_stage", "publish.after_rename",
"publish.after_load" and "publish.after_canary"; a SIGKILL at any of them leaves a "staged"
registry entry that the next publish (or rollback) quarantines before doing anything else.

rollback(): quarantine the serving version (reason "rolled back"), reload, canary the newest
standby version older than it.

The registry is the only record of version state: the serving version, its classes and shapes
(recorded when a version is staged), and what a rollback serves are read from it, never from the
version directories (which are what Triton loads). Staging lives in genline.serving.staging, the
canary and probe in genline.serving.canary, rollback in genline.serving.rollback (re-exported
here), the shared Target/PublishError/lock in genline.serving.target, the server calls in
genline.control.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline import clock, contract
from genline.control import ControlClient, error_message
from genline.faults import kill_point
from genline.fsutil import atomic_write_json, sha256_file
from genline.serving import repository as repo_mod
from genline.serving.canary import canary, probe_images
from genline.serving.features import EMBEDDING_FILE
from genline.serving.publish_checks import (
    ModelDir,
    ModelDirError,
    class_change,
    read_model_dir,
)
from genline.serving.publish_checks import check_self_contained_onnx as check_self_contained
from genline.serving.registry import Registry
from genline.serving.rollback import rollback  # noqa: F401  (re-exported)
from genline.serving.staging import (
    StagingError,
    check_against_config,
    fsync_dir,
    reshape_config_for_first_version,
    stage_files,
)
from genline.serving.target import (  # noqa: F401  (Target, PublishError re-exported)
    PublishError,
    Target,
    alert,
    check_ready_or_raise,
    connect,
    publish_lock,
    quarantine_failed,
    reconcile_or_raise,
    refused_alert,
)


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


def _onnx_sha256(md: ModelDir) -> str | None:
    """sha256 of the served ONNX file as it is on disk, if it matches export.json's record."""
    path = md.path / md.serving_variant
    if not path.is_file():
        return None
    digest = sha256_file(path)
    return digest if digest == md.export["files"].get(md.serving_variant) else None


def _same_model(
    registry: Registry, repository: Path, model: str, onnx_sha256: str, meta: dict[str, Any]
) -> int | None:
    """The newest serving or standby version holding this ONNX with the same classes/shapes."""
    for version in reversed(registry.in_state(repository, model, "serving", "standby")):
        info = registry.version_info(repository, model, version)
        old = registry.serving_meta(repository, model, version)
        if old is None:
            continue
        if info.get("lineage", {}).get("onnx_sha256") != onnx_sha256:
            continue
        same_shape = all(old.get(k) == meta[k] for k in ("latent_dim", "image_shape"))
        if same_shape and class_change(meta, old, version) is None:
            return version
    return None


def _already_serving(
    target: Target, server: ControlClient, registry: Registry, version: int, notes: list[str]
) -> PublishResult:
    """The idempotent outcome: check with a canary that `version` really serves, change nothing."""
    repo = Path(target.repository)
    meta = registry.serving_meta(repo, target.model, version) or {}
    try:
        canary(server, version, meta)
    except Exception as exc:
        alert(
            target,
            f"{target.model} version {version} is recorded as serving but fails its canary",
            {"version": version},
        )
        raise PublishError(
            f"this model is already version {version}, recorded as serving, but its canary "
            f"failed ({error_message(exc)}); nothing was changed (see `genline rollback`)",
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
    model_dir: str | Path,
    target: Target = Target(),
    *,
    allow_class_change: bool = False,
    allow_custom_gate: bool = False,
    training_data: str | Path | None = None,
) -> PublishResult:
    """Publish a gated model directory so that it serves; see the module docstring.

    Args:
        model_dir: a directory written by `genline train` (gate passed, stamped, exported).
        target: the repository and server to publish into.
        allow_class_change: publish even when the model's classes (names or count) differ from
            the serving version's.
        allow_custom_gate: publish a model gated with bounds looser than GateConfig()'s.
        training_data: where the model's training data (.npz) is now, when it is no longer at
            the source dataset.json records (a Kubeflow step gets it as an input artifact); the
            staleness baseline is computed on it, after its fingerprint is checked.

    Returns:
        The serving version; `created` is False when this ONNX already served.

    Raises:
        PublishError: the directory was refused (nothing published), or the new version failed
            and was quarantined (the previous version serves); `version` says which.
    """
    from genline.serving.profile import (
        ProbeSet,
        build_profile,
        record_staleness_baseline,
        save_profile,
    )

    model_dir = Path(model_dir).resolve()
    repo = Path(target.repository)
    registry = Registry(target.registry_path)
    try:
        repo_mod.check_model_name(target.model)
        repo_mod.check_repository(repo, target.model)
        md = read_model_dir(model_dir, allow_custom_gate=allow_custom_gate)
    except (ModelDirError, repo_mod.RepositoryError) as exc:
        kind = exc.kind if isinstance(exc, ModelDirError) else "repository"
        refused_alert(
            target,
            model_dir,
            kind,
            f"publish of {model_dir} refused: {exc}",
            {"model_dir": str(model_dir)},
        )
        raise PublishError(str(exc)) from exc
    meta = md.meta
    onnx_sha256 = _onnx_sha256(md)
    server = connect(target)
    try:
        try:
            check_ready_or_raise(server)
        except PublishError as exc:
            alert(target, str(exc), {"model_dir": str(model_dir)})
            raise
        with publish_lock(repo):
            notes = reconcile_or_raise(target, server, registry)
            previous = registry.serving(repo, target.model)
            loaded_before = server.loaded_versions()
            if previous is None and loaded_before:
                previous = loaded_before[-1]
            same = None
            if onnx_sha256 is not None:
                same = _same_model(registry, repo, target.model, onnx_sha256, meta)
            if same is not None and same == previous:
                return _already_serving(target, server, registry, same, notes)
            old_meta = (
                None if previous is None else registry.serving_meta(repo, target.model, previous)
            )
            why = None if old_meta is None else class_change(meta, old_meta, previous)
            if why and not allow_class_change:
                message = (
                    f"{model_dir} refused: {why}; clients sending a label index would get "
                    "another class. Pass --allow-class-change (publish(..., "
                    "allow_class_change=True)) to replace it"
                )
                refused_alert(
                    target,
                    model_dir,
                    "class_change",
                    message,
                    {"model_dir": str(model_dir), "serving": previous},
                )
                raise PublishError(message)
            version = repo_mod.next_version(
                repo, target.model, registry.known_versions(repo, target.model)
            )
            stage = repo_mod.staging_dir(repo)
            try:
                digests = stage_files(md.path, md.export, stage)
                if not registry.known_versions(repo, target.model) and not loaded_before:
                    for change in reshape_config_for_first_version(repo, target.model, meta):
                        notes.append(f"first version: config reshaped for this model ({change})")
                check_against_config(repo, target.model, stage / contract.ONNX_FP32)
                for name in digests:  # the bytes that will be served, not the source's
                    if name.endswith(".onnx"):
                        check_self_contained(stage / name)
            except (StagingError, ModelDirError, OSError) as exc:
                repo_mod.quarantine(repo, target.model, version, str(exc), source=stage)
                registry.record(
                    repo, target.model, "quarantined", version, state="quarantined", reason=str(exc)
                )
                alert(
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
                "published_at": clock.now().isoformat(),
            }
            # for the backend model: Triton reads the version directory, not the registry
            atomic_write_json(
                stage / contract.SERVING_META,
                {**meta, "version": version, "model": target.model, "lineage": lineage},
            )
            fsync_dir(stage)
            # recorded before the rename: from here on a crash leaves a record to reconcile
            registry.record(
                repo, target.model, "staged", version, state="staged", lineage=lineage, meta=meta
            )
            kill_point("publish.after_stage")
            dest = repo_mod.model_dir(repo, target.model) / str(version)
            os.rename(stage, dest)  # atomic: Triton never sees a half-copied version
            kill_point("publish.after_rename")
            try:
                server.load()
            except Exception as exc:
                raise quarantine_failed(
                    target,
                    server,
                    version,
                    f"load failed: {error_message(exc)}",
                    registry,
                    previous,
                ) from exc
            kill_point("publish.after_load")
            try:
                canary(server, version, meta)
                probe = ProbeSet(meta["num_classes"], meta["latent_dim"])
                labels, z = probe.arrays()
                images = probe_images(server, labels, z, version, chunk=64)
                profile = build_profile(
                    target.model,
                    version,
                    probe,
                    images,
                    dest / contract.EVALUATOR_ONNX,
                    dest / EMBEDDING_FILE,
                )
                profile_path = save_profile(profile, target.profile_dir)
            except Exception as exc:
                raise quarantine_failed(
                    target,
                    server,
                    version,
                    f"canary failed: {error_message(exc)}",
                    registry,
                    previous,
                ) from exc
            kill_point("publish.after_canary")
            lineage["reference_profile"] = str(profile_path)
            lineage.update(
                record_staleness_baseline(
                    profile,
                    md.dataset,
                    dest / contract.EVALUATOR_ONNX,
                    dest / EMBEDDING_FILE,
                    target.profile_dir,
                    data=training_data,
                )
            )
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
