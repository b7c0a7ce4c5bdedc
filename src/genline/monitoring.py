"""One drift window of the prediction log, judged by the serving-side monitors.

For a window [start, end) this reads the answered app traffic (`store.read_app_traffic`: no
canary or profile probes, no failed requests), splits it by the version that answered (a window
that spans a publish gives one verdict per version), loads what each monitor compares with --
the version's reference profile (serving health), the traffic baseline (request mix), the newest
accepted real data and the version's staleness baseline (staleness) -- calls `genline.drift`,
records every verdict (`drift_verdicts.record_verdict`) and says which alert each verdict calls
for. The Dagster assets in dagster_project/defs/monitoring.py are thin adapters over
`evaluate_window`.

A reference that is missing (no profile, no baseline, the real data unreadable) is an "error"
verdict naming it, never a silent "no drift".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genline import clock, contract
from genline.drift_verdicts import Verdict, record_verdict
from genline.serving import features as feat

if TYPE_CHECKING:
    import pandas as pd

SERVING_MONITORS = ("serving_health", "request_mix", "staleness")
# The alert each verdict raises: (kind, severity), by monitor; "error" verdicts are drift.schema.
ALERTS = {
    "serving_health": ("drift.serving", "critical"),
    "request_mix": ("drift.request_mix", "warning"),
    "staleness": ("drift.stale_model", "warning"),
}
SCHEMA_ALERT = ("drift.schema", "warning")


@dataclass(frozen=True)
class MonitorPaths:
    """Where a monitor reads and writes; None means genline's default under the state dir.

    Attributes:
        predlog_dir: the prediction log (`spool.default_dir()`).
        repository: the Triton model repository (served versions' evaluator and embedding).
        registry_path: the serving registry (which version serves, its classes).
        profile_dir: reference profiles and staleness baselines.
        verdict_dir: where verdicts are appended (`drift_verdicts.default_dir()`).
        report_dir: HTML reports (`<verdict_dir>/reports`).
        state_root: the state dir holding accepted batches (the newest real data).
    """

    predlog_dir: Path | None = None
    repository: Path = Path("triton_repo")
    registry_path: Path | None = None
    profile_dir: Path | None = None
    verdict_dir: Path | None = None
    report_dir: Path | None = None
    state_root: Path | None = None

    def reports(self, monitor: str) -> Path:
        from genline.drift_verdicts import default_dir

        base = self.report_dir or (self.verdict_dir or default_dir()) / "reports"
        return Path(base) / monitor


def version_dir(paths: MonitorPaths, model: str, version: int) -> Path:
    """The served version's directory (evaluator.onnx and embedding.npz live there)."""
    from genline.serving import repository as repo_mod

    return repo_mod.model_dir(Path(paths.repository), model) / str(int(version))


def _window_fields(model, version, window_key, start, end) -> dict[str, Any]:
    return {
        "model": model,
        "version": int(version),
        "window_key": window_key,
        "window_start": float(start),
        "window_end": float(end),
    }


def error_verdict(monitor: str, reason: str, *, n: int = 0, **window: Any) -> Verdict:
    """An "error" verdict: the window could not be judged, and `reason` says why."""
    return Verdict(
        monitor=monitor,
        status="error",
        n=n,
        reason=reason,
        computed_at=clock.now().timestamp(),
        **window,
    )


def trained_days(paths: MonitorPaths, model: str, version: int) -> list[str] | None:
    """The accepted days a published version was trained on, from its lineage record (the
    data version's batches, recorded at publish); None when that is not recorded (a version
    trained on a path or the built-in digits, or published without the pipeline)."""
    from genline.lineage_record import LineageError
    from genline.lineage_report import read_record

    root = paths.state_root or _state_root()
    try:
        record = read_record(version, model, Path(root) / "lineage")
    except LineageError:
        return None
    link = next((x for x in record["links"] if x.get("link") == "batches"), None)
    if not link or link.get("status") != "recorded" or not isinstance(link.get("value"), list):
        return None
    return [str(b["day"]) for b in link["value"] if "day" in b]


def newest_real_data(
    paths: MonitorPaths,
    trained_on: dict[str, Any],
    model: str = contract.MODEL_NAME,
    version: int | None = None,
    min_per_label: int = 1,
):
    """(dataset, what it is): the newest real data the version is judged against.

    1. The accepted batches the version was never trained on (days after its data version,
       from its lineage), when some label has at least `min_per_label` rows: the world as it
       is now, none of it fitted by the model, so used whole.
    2. Otherwise the newest data version (the union of accepted batches), of which only the
       held-out rows count: a generator sits closer to the images it was trained on.
    3. Before any batch was accepted: the data the version was trained on, held out.

    Args:
        paths: `state_root` holds the accepted batches and the lineage records.
        trained_on: the staleness baseline's `dataset` record (source, fingerprint, shape).
        model, version: the version judged (its lineage names the days it was trained on).
        min_per_label: rows a label needs for the unseen batches to be judged on their own.
    """
    import numpy as np

    from genline.data import DataError
    from genline.ingest import BatchStore, build_training_dataset
    from genline.ingest.store import accepted_days
    from genline.ingest.training_set import union_of_days
    from genline.serving.profile import held_out
    from genline.serving.profile import trained_on as load_trained_on

    store = BatchStore(paths.state_root or _state_root())
    days = accepted_days(store)
    seen = trained_days(paths, model, version) if version is not None else None
    unseen = [] if seen is None else sorted(set(days) - set(seen))
    if unseen:
        ds = union_of_days(store, unseen)
        if np.bincount(ds.labels, minlength=ds.num_classes).max() >= min_per_label:
            span = unseen[0] if len(unseen) == 1 else f"{unseen[0]}..{unseen[-1]}"
            return ds, (f"{len(unseen)} accepted batches version {version} was not trained on "
                        f"({span}, {ds.fingerprint[:12]})")
    try:
        ds = build_training_dataset(store)
    except DataError as exc:
        if "no accepted batches" not in str(exc):
            raise
        ds = load_trained_on(trained_on)
        what = f"training data {trained_on.get('source')} ({ds.fingerprint[:12]}), held out"
        return held_out(ds), what
    what = f"accepted batches in {store.accepted} ({ds.fingerprint[:12]}), held out"
    return held_out(ds), what


def _real_features(
    paths: MonitorPaths, model: str, version: int, trained_on: dict, cache: dict,
    min_per_label: int = 1,
) -> tuple[pd.DataFrame, str]:
    """The newest real data as drift rows, through this version's evaluator and embedding
    (cached per version within one evaluation)."""
    from genline.embedding import Embedding, real_features

    if version not in cache:
        vdir = version_dir(paths, model, version)
        ds, what = newest_real_data(paths, trained_on, model, version, min_per_label)
        embedding = Embedding.load(vdir / feat.EMBEDDING_FILE)
        real = real_features(ds.images, ds.labels, vdir / contract.EVALUATOR_ONNX, embedding)
        cache[version] = (real, what)
    return cache[version]


def _state_root() -> Path:
    from genline.paths import state_dir

    return state_dir()


def traffic_baseline(paths: MonitorPaths, model: str, version: int) -> tuple[dict, int]:
    """(label shares, latent dimension) the request mix of `version` is judged against: equal
    shares over the version's classes (apps are expected to ask for every class alike) and z of
    the version's latent dimension, from the served version's own serving metadata."""
    from genline.fsutil import read_json

    path = version_dir(paths, model, version) / contract.SERVING_META
    if not path.is_file():
        raise FileNotFoundError(f"no serving metadata for {model} version {version} at {path}")
    meta = read_json(path)
    k = int(meta["num_classes"])
    return {i: 1.0 / k for i in range(k)}, int(meta["latent_dim"])


def judge(
    monitor: str,
    current: pd.DataFrame,
    cfg,
    paths: MonitorPaths,
    *,
    cache: dict | None = None,
    **window: Any,
) -> Verdict:
    """One monitor's verdict on one version's rows of a window.

    Args:
        monitor: one of SERVING_MONITORS.
        current: the version's app rows in the window (`features.COLUMNS`).
        cfg: a `drift.DriftConfig`.
        paths: where references live and reports go.
        cache: real features by version, shared by the calls of one window.
        **window: model, version, window_key, window_start, window_end.

    Returns:
        The verdict (not yet recorded).
    """
    from genline import drift
    from genline.serving.profile import (
        load_profile,
        load_staleness_baseline,
        reference_frame,
    )

    model, version = window["model"], window["version"]
    report_dir = paths.reports(monitor)
    try:
        if monitor == "serving_health":
            profile = load_profile(model, version, paths.profile_dir)
            return drift.serving_health(
                current, reference_frame(profile), cfg, report_dir=report_dir, **window
            )
        if monitor == "request_mix":
            shares, dim = traffic_baseline(paths, model, version)
            return drift.request_mix(
                current, shares, cfg, report_dir=report_dir, latent_dim_=dim, **window
            )
        if monitor == "staleness":
            record = load_staleness_baseline(model, version, paths.profile_dir)
            real, what = _real_features(
                paths, model, version, record["dataset"], {} if cache is None else cache,
                min_per_label=cfg.min_samples,
            )
            verdict = drift.staleness(
                current, real, record["baseline"], cfg, report_dir=report_dir, **window
            )
            return replace(verdict, details={**verdict.details, "real_data": what})
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        # no reference to judge against: say which, never "no drift"
        return error_verdict(monitor, f"{type(exc).__name__}: {exc}", n=len(current), **window)
    raise ValueError(f"unknown serving monitor {monitor!r} (known: {SERVING_MONITORS})")


def serving_version(paths: MonitorPaths, model: str) -> int:
    """The version the registry says serves (0 when none has been published)."""
    from genline.serving.registry import Registry

    return int(Registry(paths.registry_path).serving(Path(paths.repository), model) or 0)


def evaluate_window(
    monitor: str,
    window_key: str,
    start: float,
    end: float,
    cfg=None,
    paths: MonitorPaths = MonitorPaths(),
    *,
    model: str = contract.MODEL_NAME,
    record: bool = True,
) -> list[Verdict]:
    """Judge one window of the prediction log with one monitor, one verdict per version.

    A window without app traffic gives one "insufficient_data" verdict for the serving version.

    Args:
        monitor: one of SERVING_MONITORS.
        window_key: the window's partition key.
        start: epoch seconds, inclusive.
        end: epoch seconds, exclusive.
        cfg: a `drift.DriftConfig` (default `DriftConfig.load()`).
        paths: where to read and write.
        model: the served model.
        record: append the verdicts to the verdict log.

    Returns:
        The verdicts, versions ascending.
    """
    from genline.drift import DriftConfig
    from genline.serving.store import read_app_traffic

    if monitor not in SERVING_MONITORS:
        raise ValueError(f"unknown serving monitor {monitor!r} (known: {SERVING_MONITORS})")
    cfg = cfg if cfg is not None else DriftConfig.load()
    by_version = read_app_traffic(start, end, paths.predlog_dir)
    verdicts: list[Verdict] = []
    cache: dict = {}
    if not by_version:
        verdicts.append(
            Verdict(
                monitor=monitor,
                status="insufficient_data",
                n=0,
                reason="no app traffic in the window",
                computed_at=clock.now().timestamp(),
                **_window_fields(model, serving_version(paths, model), window_key, start, end),
            )
        )
    for version, rows in by_version.items():
        rows = rows[rows["model"] == model] if "model" in rows else rows
        window = _window_fields(model, version, window_key, start, end)
        rows = rows.reset_index(drop=True)
        verdicts.append(judge(monitor, rows, cfg, paths, cache=cache, **window))
    if record:
        for v in verdicts:
            record_verdict(v, paths.verdict_dir)
    return verdicts


def alert_for(verdict: Verdict) -> dict[str, Any] | None:
    """The `send_alert` keyword arguments a verdict calls for (None: no alert).

    "drift" raises the monitor's kind, "error" raises drift.schema; one incident per (kind,
    model, version, monitor), so a drift that lasts many windows is one incident that updates.
    """
    if verdict.status == "drift":
        kind, severity = ALERTS[verdict.monitor]
        what = ", ".join(verdict.drifted[:6]) or "see the report"
        summary = (
            f"{verdict.monitor} drift on {verdict.model} version {verdict.version} in window "
            f"{verdict.window_key}: {what}"
        )
    elif verdict.status == "error":
        kind, severity = SCHEMA_ALERT
        summary = (
            f"{verdict.monitor} could not judge {verdict.model} version {verdict.version} in "
            f"window {verdict.window_key}: {verdict.reason}"
        )
    else:
        return None
    numbers = {k: float(v) for k, v in verdict.scores.items() if k in verdict.drifted} or {
        k: float(v) for k, v in list(verdict.scores.items())[:10]
    }
    thresholds = {k: float(v) for k, v in verdict.thresholds.items() if k in numbers}
    return {
        "source": "drift." + verdict.monitor,
        "summary": summary[:500],
        "severity": severity,
        "kind": kind,
        "subject": verdict.monitor,
        "model": verdict.model,
        "version": str(verdict.version),
        "numbers": numbers,
        "thresholds": thresholds,
        "links": {"report": "file://" + verdict.report} if verdict.report else {},
        "details": {
            "window_key": verdict.window_key,
            "window_start": verdict.window_start,
            "window_end": verdict.window_end,
            "n": verdict.n,
            "status": verdict.status,
            "reason": verdict.reason,
        },
    }
