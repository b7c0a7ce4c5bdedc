"""The data assets: each day's batch (validated, accepted or quarantined) and the versioned
training dataset built from the accepted batches. Thin adapters over genline.ingest/versioning.
"""

import base64
import json
import os

import dagster as dg

from genline.contract import MODEL_NAME
from genline.data import DataError
from genline.fsutil import atomic_write_bytes
from genline.ingest import (
    accepted_days,
    build_training_dataset,
    deliver_simulated,
    ingest_batch,
    sample_grid_png,
)
from genline.ingest.input_drift import check_accepted_batch
from genline.lineage_record import batch_records
from genline.npzfiles import save_npz
from genline.validation import ADVISORY_CHECKS, ReferenceStats
from genline.versioning import (
    TRACKED_NAME,
    VersioningError,
    checkout,
    current_version,
    md5_file,
    record_dataset_file,
)

from .checks import INPUT_DRIFT_CHECK, incoming_batch_check_specs
from .partitions import daily_partitions
from .resources import AlertSinkResource, DvcRemoteResource, GenlineStateResource
from .retries import TRANSIENT_RETRY, as_failure


class TrainingDatasetConfig(dg.Config):
    as_of: str = ""  # YYYY-MM-DD: union of accepted days up to it; empty = every accepted day


def accepted_reference(
    dvc_remote: DvcRemoteResource, genline_state: GenlineStateResource
) -> ReferenceStats | None:
    """The accepted reference batches are compared with: the current training_dataset version."""
    version = current_version(dvc_remote.config(genline_state.root()))
    if version is None or "reference" not in version.info:
        return None
    return ReferenceStats.from_dict(version.info["reference"])


def _input_drift(
    context: dg.AssetExecutionContext,
    genline_state: GenlineStateResource,
    dvc_remote: DvcRemoteResource,
    day: str,
    outcome,
) -> tuple[dg.AssetCheckResult, str]:
    """The non-blocking Evidently check of an accepted batch against the current training data
    (its verdict recorded with monitor "input_batch"), and its status for the metadata."""

    def result(passed: bool, text: str, status: str, **meta) -> tuple[dg.AssetCheckResult, str]:
        return dg.AssetCheckResult(
            check_name=INPUT_DRIFT_CHECK, passed=passed, severity=dg.AssetCheckSeverity.WARN,
            description=text, metadata={"status": status, **meta},
        ), status

    if not outcome.accepted:
        return result(False, "not evaluated: the batch was quarantined", "not_evaluated")
    root = genline_state.root()
    version = current_version(dvc_remote.config(root))
    if version is None:
        return result(True, "no training data version yet: nothing to compare with", "skipped")
    dataset = root / "datasets" / version.md5 / TRACKED_NAME
    if not dataset.is_file() or md5_file(dataset) != version.md5:
        checkout(dvc_remote.config(root), version.md5, dataset)
    verdict = check_accepted_batch(root, day, outcome.batch_path, dataset,
                                   dataset_md5=version.md5, model=MODEL_NAME)
    meta = {
        "verdict": verdict.status,
        "reason": verdict.reason,
        "scores": dg.MetadataValue.json(verdict.scores),
        "thresholds": dg.MetadataValue.json(verdict.thresholds),
        "drifted": dg.MetadataValue.json(verdict.drifted),
        "reference": verdict.reference,
        "n": verdict.n,
    }
    if verdict.report:
        meta["report"] = dg.MetadataValue.path(verdict.report)
        meta["report_url"] = dg.MetadataValue.url(f"file://{verdict.report}")
    if verdict.status == "drift":
        context.log.warning(f"batch {day} accepted with input drift: {verdict.reason}")
    return result(verdict.status != "drift" and verdict.status != "error", verdict.reason,
                  verdict.status, **meta)


@dg.asset(
    partitions_def=daily_partitions,
    check_specs=incoming_batch_check_specs,
    group_name="data",
    kinds={"python", "numpy"},
)
def incoming_batch(
    context: dg.AssetExecutionContext,
    genline_state: GenlineStateResource,
    dvc_remote: DvcRemoteResource,
    alert_sink: AlertSinkResource,
) -> dg.MaterializeResult:
    """One day's delivery from the drop folder, validated: accepted into the store or
    quarantined (with its validation result and an alert)."""
    day = context.partition_key
    store = genline_state.store()
    if genline_state.simulate_builtin:
        deliver_simulated(store, day, genline_state.start(), genline_state.simulation_days)
    reference = accepted_reference(dvc_remote, genline_state)
    try:
        outcome = ingest_batch(
            store,
            day,
            reference=reference,
            config=genline_state.validation_config(),
            alert_sink=alert_sink.directory(),
        )
    except DataError as exc:
        raise dg.Failure(description=str(exc)) from exc
    result = outcome.result
    if not outcome.accepted:
        context.log.error(
            f"batch {day} quarantined in {outcome.batch_path.parent}: {result.summary()}"
        )
    by_name = {c.name: c for c in result.checks}
    unreadable = not by_name["readable"].passed if "readable" in by_name else True
    drift = _input_drift(context, genline_state, dvc_remote, day, outcome)
    check_results = [drift[0]]
    for spec in incoming_batch_check_specs:
        if spec.name == INPUT_DRIFT_CHECK:
            continue
        c = by_name.get(spec.name)
        if c is None:  # the delivery could not be read: nothing else was evaluated
            check_results.append(
                dg.AssetCheckResult(
                    check_name=spec.name,
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description="not evaluated: the delivery could not be read",
                )
            )
            continue
        check_results.append(
            dg.AssetCheckResult(
                check_name=spec.name,
                passed=c.passed,
                severity=(
                    dg.AssetCheckSeverity.WARN
                    if spec.name in ADVISORY_CHECKS
                    else dg.AssetCheckSeverity.ERROR
                ),
                description=c.summary,
                metadata={
                    "skipped": c.skipped,
                    "validation_result": dg.MetadataValue.path(str(outcome.result_path)),
                    "expectations": dg.MetadataValue.json(list(c.expectations)),
                },
            )
        )
    metadata = {
        "status": outcome.status,
        "num_rows": outcome.num_rows,
        "class_counts": dg.MetadataValue.json(result.stats.get("class_counts", {})),
        "validation_result": dg.MetadataValue.path(str(outcome.result_path)),
        "summary": result.summary(),
        "failed_checks": dg.MetadataValue.json([c.name for c in result.failed_checks]),
        "delivery_sha256": outcome.delivery_sha256,
        "reference_fingerprint": (reference.fingerprint if reference else "none yet"),
        "unreadable": unreadable,
        "input_drift": drift[1],
        "warned_checks": dg.MetadataValue.json([c.name for c in result.warned_checks]),
    }
    if outcome.accepted:
        metadata["batch_path"] = dg.MetadataValue.path(str(outcome.batch_path))
    else:
        metadata["quarantine"] = dg.MetadataValue.path(str(outcome.batch_path.parent))
        metadata["alert_id"] = outcome.alert_id or ""
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=check_results,
        data_version=dg.DataVersion(outcome.delivery_sha256[:16]),
    )


@dg.asset(
    deps=[incoming_batch],
    group_name="data",
    kinds={"dvc", "numpy"},
    retry_policy=TRANSIENT_RETRY,
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    genline_state: GenlineStateResource,
    dvc_remote: DvcRemoteResource,
) -> dg.Output[dict]:
    """The union of accepted daily batches, versioned with DVC (data version = DVC md5).

    The value handed to downstream assets is a dict: `path` (an immutable copy of this version's
    canonical .npz under <state>/datasets/<md5>/), `dvc_md5`, `dvc_commit`, `dvc_repo`,
    `dvc_remote`, `fingerprint`, `num_rows`, `classes`, `class_counts`, `accepted_days`.
    """
    root = genline_state.root()
    store = genline_state.store()
    as_of = config.as_of or None
    try:
        ds = build_training_dataset(store, as_of)
    except DataError as exc:  # about the data: a retry would see the same batches
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    days = accepted_days(store, as_of)
    staging = root / "staging" / f"training_dataset-{os.getpid()}-{context.run.run_id[:8]}.npz"
    save_npz(ds, staging)
    cfg = dvc_remote.config(root)
    info = {
        **ds.info(),
        "accepted_days": days,
        "batches": batch_records(store.root, days),  # each batch's validation, for lineage
        "reference": ReferenceStats.from_dataset(ds).to_dict(),
        "dagster_run": context.run.run_id,
    }
    try:
        version, new, path = record_dataset_file(
            cfg,
            staging,
            root / "datasets",
            info,
            message=(
                f"training_dataset: {len(ds)} rows from {len(days)} accepted days "
                f"({days[0]}..{days[-1]})"
            ),
        )
    except VersioningError as exc:
        raise as_failure(exc) from exc
    published = path.parent
    png = sample_grid_png(ds)
    atomic_write_bytes(published / "samples.png", png)
    value = {
        "path": str(path),
        "dvc_md5": version.md5,
        "dvc_commit": version.commit,
        "dvc_repo": str(cfg.repo_dir),
        "dvc_remote": cfg.remote_url,
        "fingerprint": ds.fingerprint,
        "num_rows": len(ds),
        "classes": list(ds.classes),
        "class_counts": ds.class_counts(),
        "accepted_days": days,
    }
    context.log.info(
        f"training_dataset version {version.md5} ({'new' if new else 'unchanged'}): {len(ds)} rows"
    )
    return dg.Output(
        value,
        data_version=dg.DataVersion(version.md5),
        metadata={
            "dvc_md5": version.md5,
            "dvc_commit": version.commit,
            "new_version": new,
            "path": dg.MetadataValue.path(str(path)),
            "num_rows": len(ds),
            "fingerprint": ds.fingerprint,
            "class_counts": dg.MetadataValue.json(ds.class_counts()),
            "accepted_days": len(days),
            "first_day": days[0],
            "last_day": days[-1],
            "dvc_remote": cfg.remote_url,
            "sample_grid": dg.MetadataValue.path(str(published / "samples.png")),
            "samples": dg.MetadataValue.md(
                f"![samples](data:image/png;base64,{base64.b64encode(png).decode()})"
            ),
            "restore": f"genline data checkout {version.md5}",
            "restore_dvc": (
                f"dvc import {cfg.repo_dir} {path.name} --rev {version.commit} "
                f"-o datasets/{path.name}"
            ),
            "value": dg.MetadataValue.json(json.loads(json.dumps(value))),
        },
    )
