"""The lineage of a published version, read back: the record plus the links read live.

`lineage_report` reads the record genline.lineage_record wrote at publish and adds the two links
that grow after publish, read now: the prediction-log partitions the version served
(`served_partitions`, from genline.serving.store hour directories) and the drift verdicts about
it (`drift_reports`, from genline.drift_verdicts). `format_table` renders it for a person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genline import clock, contract
from genline.fsutil import read_json
from genline.lineage_record import (
    LINK_TITLES,
    LIVE,
    LIVE_LINKS,
    NONE_YET,
    RECORDED,
    SCHEMA,
    LineageError,
    _link,
    record_path,
)

# --- at query time --------------------------------------------------------------------------------


def read_record(
    version: int, model: str | None = None, directory: str | Path | None = None
) -> dict[str, Any]:
    """The lineage record of a published version.

    Raises:
        LineageError: no record for it (the message lists the versions that have one).
    """
    model = model or contract.MODEL_NAME
    path = record_path(model, version, directory)
    if not path.is_file():
        known = sorted(int(p.stem) for p in path.parent.glob("*.json") if p.stem.isdigit())
        listed = ", ".join(map(str, known)) if known else "none"
        raise LineageError(
            f"no lineage record for {model} version {version} ({path} does not exist); versions "
            f"with a record: {listed}. Records are written by the pipeline's publish step; a "
            "version published another way has none"
        )
    record = read_json(path)
    if record.get("schema") != SCHEMA or not isinstance(record.get("links"), list):
        raise LineageError(f"{path} is not a lineage record (schema {record.get('schema')!r})")
    return record


def served_partitions(
    model: str, version: int, predictions_dir: str | Path | None = None
) -> dict[str, Any]:
    """The prediction-log hour partitions holding rows of `model` `version` (read live).

    Each partition: its key, the version's rows, and those that drift reads (status OK, source
    app; rows logged before the source column existed count by their request id).
    """
    import pyarrow.parquet as pq

    from genline.serving import features as feat
    from genline.serving.spool import default_dir as predlog_dir
    from genline.serving.store import STORE

    base = Path(predictions_dir) if predictions_dir is not None else predlog_dir()
    store = base / STORE
    parts = []
    for hour_dir in sorted(store.glob("date=*/hour=*")):
        rows = app_ok = 0
        for part in sorted(hour_dir.glob("part-*.parquet")):
            names = set(pq.read_schema(part).names)
            cols = [c for c in ("request_id", "model", "version", "status", "source") if c in names]
            df = pq.read_table(part, columns=cols).to_pandas()
            mine = df[df["version"] == int(version)]
            if "model" in mine:
                mine = mine[mine["model"].isna() | (mine["model"] == model)]
            if mine.empty:
                continue
            if "source" in mine:
                source = mine["source"].fillna(mine["request_id"].map(feat.source_of))
            else:
                source = mine["request_id"].map(feat.source_of)
            rows += len(mine)
            app_ok += int(((mine["status"] == "OK") & (source == "app")).sum())
        if rows:
            key = f"{hour_dir.parent.name}/{hour_dir.name}"
            parts.append({"partition": key, "rows": rows, "app_ok_rows": app_ok})
    if not parts:
        return _link(
            "served_partitions",
            NONE_YET,
            [],
            f"no compacted prediction-log rows of {model} version {version} in {store} yet",
        )
    return _link("served_partitions", LIVE, parts, f"from {store}")


def drift_reports(model: str, version: int, drift_dir: str | Path | None = None) -> dict[str, Any]:
    """The drift verdicts recorded about `model` `version` (read live from drift_verdicts)."""
    from genline.drift_verdicts import read_verdicts

    verdicts = read_verdicts(model=model, version=int(version), directory=drift_dir)
    items = [
        {
            "monitor": v.monitor,
            "status": v.status,
            "window_key": v.window_key,
            "n": v.n,
            "drifted": list(v.drifted),
            "report": v.report,
            "report_exists": bool(v.report) and Path(v.report).is_file(),
            "computed_at": v.computed_at,
        }
        for v in verdicts
    ]
    if not items:
        why = f"no drift verdicts about version {version} yet"
        return _link("drift_reports", NONE_YET, [], why)
    return _link("drift_reports", LIVE, items)


def lineage_report(
    version: int,
    model: str | None = None,
    *,
    directory: str | Path | None = None,
    predictions_dir: str | Path | None = None,
    drift_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The full lineage of a version: the record written at publish plus the two live links.

    Raises:
        LineageError: no record for the version.
    """
    model = model or contract.MODEL_NAME
    record = read_record(version, model, directory)
    links = list(record["links"])
    links.append(served_partitions(model, version, predictions_dir))
    links.append(drift_reports(model, version, drift_dir))
    return {
        **record,
        "links": links,
        "live": "served_partitions and drift_reports grow after publish: they were read now, at "
        f"{clock.now().isoformat()}; the other links were recorded when they happened",
    }


# --- the human table ------------------------------------------------------------------------------


def _short(sha: Any) -> str:
    return str(sha)[:16] if sha else "?"


def _describe(link: dict[str, Any]) -> list[str]:
    """One or more lines describing a recorded or live link's value."""
    name, v = link["link"], link["value"]
    if name == "data_version":
        return [
            f"md5 {v['dvc_md5']}  git commit {v.get('git_commit')}",
            f"{v.get('num_rows')} rows, created {v.get('created')}, in {v.get('dvc_repo')}"
            + (
                f", versioned by Dagster run {v['versioned_by_dagster_run']}"
                if v.get("versioned_by_dagster_run")
                else ""
            ),
        ]
    if name == "batches":
        return [
            f"{b['day']}: {b.get('status')}"
            + (f", {b.get('passed')}/{b.get('checks')} checks passed" if "checks" in b else "")
            + (f", failed {b['failed']}" if b.get("failed") else "")
            + (f", delivery {_short(b.get('delivery_sha256'))}" if b.get("delivery_sha256") else "")
            for b in v
        ]
    if name == "dagster_run":
        return [str(v["run_id"])]
    if name == "kubeflow_run":
        return [f"{v['run_id']}  ({v.get('run_name')})"]
    if name == "checkpoint":
        return [f"sha256 {v['sha256']}  (training run {v.get('training_run_id')})"]
    if name == "onnx":
        variant = v.get("serving_variant")
        extra = f", serving variant {variant}" if variant and variant != v["file"] else ""
        return [f"sha256 {v['sha256']}  ({v['file']}{extra})"]
    if name == "triton_version":
        return [
            f"{v['model']} version {v['version']} (previous {v.get('previous') or 'none'}), "
            f"published {v.get('published_at')}",
            f"repository {v['repository']}",
        ]
    if name == "trigger":
        if v.get("kind") != "drift":
            return [str(v.get("kind"))]
        lines = [
            f"drift: {v.get('monitor', 'staleness')} window {v.get('window_key')} of "
            f"{v.get('model')} version {v.get('version')}"
        ]
        if v.get("report"):
            lines.append(f"report {v['report']}")
        if v.get("scores"):
            lines.append("scores " + ", ".join(f"{k}={s}" for k, s in v["scores"].items()))
        return lines
    if name == "served_partitions":
        return [
            f"{p['partition']}: {p['rows']} rows logged, {p['app_ok_rows']} of them app "
            "requests answered OK (the rest: canary/profile probes, failures)"
            for p in v
        ]
    if name == "drift_reports":
        return [
            f"{d['monitor']} {d['window_key']}: {d['status']} (n={d['n']})"
            + (f" drifted {d['drifted']}" if d.get("drifted") else "")
            + (f"  {d['report']}" if d.get("report") else "  (no HTML report)")
            + ("" if not d.get("report") or d["report_exists"] else " [pruned]")
            for d in v
        ]
    return [str(v)]


def format_table(report: dict[str, Any]) -> str:
    """The lineage as a two-column table a person reads top to bottom."""
    width = max(len(t) for t in LINK_TITLES.values()) + 2
    lines = [
        f"lineage of {report['model']} version {report['version']} "
        f"(recorded {report['recorded_at']}: {report.get('record', '')})",
    ]
    for link in report["links"]:
        title = LINK_TITLES.get(link["link"], link["link"])
        if link["link"] in LIVE_LINKS:
            title += "*"
        if link["status"] in (RECORDED, LIVE):
            body = _describe(link)
            if link["status"] == RECORDED and link.get("reason"):
                body.append(f"note: {link['reason']}")
        elif link["status"] == NONE_YET:
            body = [f"none yet: {link['reason']}"]
        else:
            body = [f"not recorded: {link['reason']}"]
        for i, text in enumerate(body or ["(empty)"]):
            lines.append(f"  {(title if i == 0 else ''):<{width}}{text}")
    lines.append(f"  * {report.get('live', 'read live at query time')}")
    return "\n".join(lines)
