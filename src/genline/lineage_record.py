"""The lineage of a published version: the record written when it is published.

Each link is recorded by the step that knows it, when it happens, and carried forward:

    data version     versioning (training_dataset): DVC md5 + git commit of the data repository;
                     the version's info lists its batches (`batch_records`, at versioning time)
    batches          ingest: each accepted batch's validation result (accepted/<day>/...json)
    Dagster run      the pipeline parameter `dagster_run_id` (the run that launched the pipeline)
    Kubeflow run     dsl.PIPELINE_JOB_ID_PLACEHOLDER / PIPELINE_JOB_NAME_PLACEHOLDER, resolved by
                     KFP (and by kfp.local) when the publish step runs
    checkpoint       training's stamp (checkpoint sha256 + training run id), as publish recorded it
    ONNX             export's sha256, as publish staged (and re-hashed) the served bytes
    Triton version   publish: the version number it assigned and loaded
    trigger          the pipeline parameter `trigger` (manual, or the drift verdict's window)

`record_publish` (called by the publish_model component right after a successful publish) writes
them to `$GENLINE_HOME/lineage/<model>/<version>.json` atomically. Two more links grow after
publish and are therefore read live by genline.lineage_report: the prediction-log partitions the
version served (genline.serving.store hour directories) and the drift verdicts about it
(genline.drift_verdicts). A link that was not recorded says so, with the reason; nothing is
filled in from paths or guesses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genline import clock, contract
from genline.fsutil import atomic_write_json, read_json, sha256_file

SCHEMA = 1
RECORDED, NOT_RECORDED, LIVE, NONE_YET = "recorded", "not recorded", "read live", "none yet"
RECORDED_LINKS = (
    "data_version",
    "batches",
    "dagster_run",
    "kubeflow_run",
    "checkpoint",
    "onnx",
    "triton_version",
    "trigger",
)
LIVE_LINKS = ("served_partitions", "drift_reports")
LINK_TITLES = {
    "data_version": "data version",
    "batches": "batches",
    "dagster_run": "Dagster run",
    "kubeflow_run": "Kubeflow run",
    "checkpoint": "checkpoint",
    "onnx": "ONNX",
    "triton_version": "Triton version",
    "trigger": "trigger",
    "served_partitions": "served partitions",
    "drift_reports": "drift reports",
}


class LineageError(ValueError):
    """A lineage record that cannot be written or found as asked; the message says why."""


def default_dir() -> Path:
    from genline.paths import state_dir

    return state_dir() / "lineage"


def record_path(model: str, version: int, directory: str | Path | None = None) -> Path:
    """Where the lineage record of `model` version `version` lives."""
    from genline.serving.repository import check_model_name

    check_model_name(model)
    if isinstance(version, bool) or int(version) < 1:
        raise LineageError(f"a published version is a number >= 1, got {version!r}")
    base = Path(directory) if directory is not None else default_dir()
    return base / model / f"{int(version)}.json"


def _link(name: str, status: str, value: Any = None, reason: str = "") -> dict[str, Any]:
    return {"link": name, "status": status, "value": value, "reason": reason}


# --- at versioning time ---------------------------------------------------------------------------


def batch_records(store_root: str | Path, days: list[str]) -> list[dict[str, Any]]:
    """What the dataset version records about each accepted batch it was built from.

    Called when training_dataset versions the union of accepted batches, so the version's info
    carries each batch's validation outcome as it was when the version was made.

    Args:
        store_root: the batch store's root (holding accepted/<day>/).
        days: the accepted days in the version, oldest first.

    Returns:
        One dict per day: day, status, success, checks, failed, delivery_sha256, batch_sha256,
        validated_at, validation_result (path). A day without its validation.json says so.
    """
    from genline.ingest.store import BATCH_FILE, RESULT_FILE

    out = []
    for day in days:
        folder = Path(store_root) / "accepted" / day
        result = folder / RESULT_FILE
        batch = folder / BATCH_FILE
        entry: dict[str, Any] = {"day": day, "validation_result": str(result)}
        if batch.is_file():
            entry["batch_sha256"] = sha256_file(batch)
        if not result.is_file():
            entry.update(status="unknown", reason=f"{result} is missing")
            out.append(entry)
            continue
        data = read_json(result)
        checks = data.get("checks", [])
        entry.update(
            status=data.get("status", "unknown"),
            success=bool(data.get("success")),
            checks=len(checks),
            passed=sum(1 for c in checks if c.get("passed")),
            failed=list(data.get("failed", [])),
            delivery_sha256=data.get("delivery_sha256"),
            validated_at=data.get("created", ""),
        )
        out.append(entry)
    return out


# --- at publish time ------------------------------------------------------------------------------


def _data_links(
    model_dir: Path, dataset_md5: str, dataset_commit: str, dvc_repo: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data version and batches links, from the version the validate step restored."""
    trained_on = {}
    info_path = model_dir / contract.DATASET_INFO
    if info_path.is_file():
        trained_on = read_json(info_path)
    fingerprint = trained_on.get("fingerprint")
    if not dataset_md5:
        why = (
            "the pipeline did not train on a DVC dataset version (dataset_version was empty; "
            f"trained on {trained_on.get('source') or 'a path or the built-in digits'}, "
            f"fingerprint {fingerprint})"
        )
        return (
            _link("data_version", NOT_RECORDED, {"fingerprint": fingerprint}, why),
            _link("batches", NOT_RECORDED, None, "no dataset version, so no batches"),
        )
    from genline.versioning import DvcConfig, VersioningError, resolve_version

    cfg = DvcConfig.default(repo_dir=dvc_repo or None)
    value: dict[str, Any] = {
        "dvc_md5": dataset_md5,
        "git_commit": dataset_commit or None,
        "dvc_repo": str(cfg.repo_dir),
        "fingerprint": fingerprint,
    }
    try:
        version = resolve_version(cfg, dataset_md5)
    except VersioningError as exc:
        return (
            _link("data_version", NOT_RECORDED, value, f"cannot read the version's record: {exc}"),
            _link("batches", NOT_RECORDED, None, "the dataset version's record is unreadable"),
        )
    if version.md5 != dataset_md5 or (dataset_commit and version.commit != dataset_commit):
        why = (
            f"the validate step restored md5 {dataset_md5} (commit {dataset_commit or '?'}), but "
            f"{cfg.repo_dir} resolves it to md5 {version.md5} commit {version.commit}"
        )
        return (
            _link("data_version", NOT_RECORDED, value, why),
            _link("batches", NOT_RECORDED, None, why),
        )
    info = version.info
    value.update(
        git_commit=version.commit,
        created=version.created,
        num_rows=info.get("num_rows"),
        versioned_by_dagster_run=info.get("dagster_run"),
    )
    if fingerprint and info.get("fingerprint") and info["fingerprint"] != fingerprint:
        why = (
            f"dataset version {version.md5} has fingerprint {info['fingerprint']}, but the model "
            f"was trained on data with fingerprint {fingerprint}"
        )
        return (
            _link("data_version", NOT_RECORDED, value, why),
            _link("batches", NOT_RECORDED, None, why),
        )
    data_link = _link("data_version", RECORDED, value)
    if info.get("batches"):
        batches = _link("batches", RECORDED, list(info["batches"]))
    elif info.get("accepted_days"):
        batches = _link(
            "batches",
            NOT_RECORDED,
            {"days": list(info["accepted_days"])},
            f"dataset version {version.md5[:12]} lists its days but not their validation "
            "results (it was versioned before batch lineage was recorded)",
        )
    else:
        batches = _link(
            "batches",
            NOT_RECORDED,
            None,
            f"dataset version {version.md5[:12]} records no batches (it was committed outside "
            "the training_dataset asset)",
        )
    return data_link, batches


def _registry_lineage(repository: Path, model: str, version: int, registry_path: Any) -> dict:
    from genline.serving.registry import Registry

    return Registry(registry_path).version_info(repository, model, version).get("lineage", {})


def build_publish_record(
    *,
    model_dir: str | Path,
    model_repository: str | Path,
    version: int,
    previous: int | None = None,
    dagster_run_id: str = "",
    trigger: dict[str, Any] | None = None,
    dataset_md5: str = "",
    dataset_commit: str = "",
    dvc_repo: str = "",
    kfp_run_id: str = "",
    kfp_run_name: str = "",
    model: str | None = None,
    registry_path: str | Path | None = None,
) -> dict[str, Any]:
    """The lineage record of a version publish has just made serve (nothing is written).

    Args:
        model_dir: the exported model directory that was published.
        model_repository: the Triton repository it was published into.
        version: the version publish returned; previous: the one serving before it.
        dagster_run_id: the Dagster run that launched the pipeline ("" when none did).
        trigger: the parsed trigger ({"kind": "manual"} or a drift trigger).
        dataset_md5, dataset_commit: the DVC version the validate step restored ("" when the
            run trained on a path); dvc_repo: its data repository ("" = genline's default).
        kfp_run_id, kfp_run_name: the KFP run (its uuid and name, from the dsl placeholders).
        model: the served model name (default genline.contract.MODEL_NAME).
        registry_path: the serving registry (default under the state directory).

    Returns:
        {"schema", "model", "version", "recorded_at", "record", "links": [8 links]}.
    """
    model = model or contract.MODEL_NAME
    model_dir = Path(model_dir).resolve()
    repository = Path(model_repository).resolve()
    data_link, batches = _data_links(model_dir, dataset_md5, dataset_commit, dvc_repo)

    if dagster_run_id:
        dagster = _link("dagster_run", RECORDED, {"run_id": dagster_run_id})
    else:
        dagster = _link(
            "dagster_run",
            NOT_RECORDED,
            None,
            "the pipeline was not launched by Dagster (dagster_run_id was empty)",
        )

    unresolved = [v for v in (kfp_run_id, kfp_run_name) if v.startswith("{{")]
    if kfp_run_id and not unresolved:
        kfp = _link("kubeflow_run", RECORDED, {"run_id": kfp_run_id, "run_name": kfp_run_name})
    else:
        kfp = _link(
            "kubeflow_run",
            NOT_RECORDED,
            None,
            f"the KFP run placeholders were not resolved ({unresolved})"
            if unresolved
            else "publish was not run by a Kubeflow pipeline (no run id given)",
        )

    reg = _registry_lineage(repository, model, version, registry_path)
    export = {}
    if (model_dir / contract.EXPORT_REPORT).is_file():
        export = read_json(model_dir / contract.EXPORT_REPORT)
    if reg.get("checkpoint_sha256"):
        ckpt = _link(
            "checkpoint",
            RECORDED,
            {"sha256": reg["checkpoint_sha256"], "training_run_id": reg.get("run_id")},
        )
    elif export.get(contract.CHECKPOINT_SHA256_KEY):
        ckpt = _link(
            "checkpoint",
            RECORDED,
            {
                "sha256": export[contract.CHECKPOINT_SHA256_KEY],
                "training_run_id": export.get(contract.RUN_ID_KEY),
            },
            "from the export stamp (the serving registry has no lineage for this version)",
        )
    else:
        ckpt = _link("checkpoint", NOT_RECORDED, None, f"{model_dir} carries no checkpoint stamp")

    # what was staged as model.onnx: the adopted variant (INT8, the distilled student) or FP32
    exported = export.get("files", {}).get(export.get("serving_variant", contract.ONNX_FP32))
    if reg.get("onnx_sha256"):
        onnx_value = {
            "sha256": reg["onnx_sha256"],
            "file": contract.ONNX_FP32,
            "serving_variant": reg.get("serving_variant"),
            "exported_sha256": exported,
        }
        note = "" if exported in (None, reg["onnx_sha256"]) else "export.json records other bytes"
        onnx = _link("onnx", RECORDED, onnx_value, note)
    else:
        onnx = _link(
            "onnx",
            NOT_RECORDED,
            {"exported_sha256": exported} if exported else None,
            f"the serving registry has no staged sha256 for {model} version {version}",
        )

    triton = _link(
        "triton_version",
        RECORDED,
        {
            "model": model,
            "version": int(version),
            "previous": previous or None,
            "repository": str(repository),
            "published_at": reg.get("published_at"),
            "reference_profile": reg.get("reference_profile"),
            "model_dir": str(model_dir),
        },
    )
    if trigger:
        trig = _link("trigger", RECORDED, dict(trigger))
    else:
        trig = _link("trigger", NOT_RECORDED, None, "the publish step received no trigger")
    return {
        "schema": SCHEMA,
        "model": model,
        "version": int(version),
        "recorded_at": clock.now().isoformat(),
        "links": [data_link, batches, dagster, kfp, ckpt, onnx, triton, trig],
    }


def record_publish(
    *,
    model_dir: str | Path,
    model_repository: str | Path,
    version: int,
    previous: int | None = None,
    directory: str | Path | None = None,
    **kwargs: Any,
) -> Path:
    """Write the lineage record of a just-published version (atomic; see build_publish_record).

    Publishing the same ONNX again returns the version that already serves (version ==
    previous): its first record is kept, since that publish is where its lineage happened.

    Returns:
        The record's path.
    """
    model = kwargs.get("model") or contract.MODEL_NAME
    path = record_path(model, version, directory)
    if path.is_file() and previous is not None and int(previous) == int(version):
        return path
    record = build_publish_record(
        model_dir=model_dir,
        model_repository=model_repository,
        version=version,
        previous=previous,
        **kwargs,
    )
    record["record"] = str(path)
    atomic_write_json(path, record)
    return path
