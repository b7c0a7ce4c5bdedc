"""Retraining: what a retrain run starts from, why it runs, and where its reason is recorded.

The Kubeflow components and the Dagster retrain sensor share these; nothing here imports kfp or
dagster.

A trigger is a JSON object: {"kind": "manual"} or {"kind": "drift", "window_key", "model",
"version", "report", "scores"} (the staleness verdict that asked for the run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from genline import contract

TRIGGER_KINDS = ("manual", "drift")
DRIFT_TRIGGER_FIELDS = ("window_key", "model", "version")
MANUAL_TRIGGER = '{"kind": "manual"}'


def parse_trigger(trigger: str | dict[str, Any] | None) -> dict[str, Any]:
    """The trigger of a run as a dict, checked.

    Args:
        trigger: the pipeline's `trigger` parameter (a JSON string), a dict, or ""/None for a
            manual run.

    Raises:
        ValueError: not JSON, not an object, an unknown kind, or a drift trigger without the
            verdict's window_key/model/version.
    """
    if trigger in (None, ""):
        return {"kind": "manual"}
    if isinstance(trigger, str):
        try:
            value = json.loads(trigger)
        except json.JSONDecodeError as exc:
            raise ValueError(f"trigger is not valid JSON ({exc.msg}): {trigger!r}") from None
    else:
        value = trigger
    if not isinstance(value, dict):
        raise ValueError(f"trigger must be a JSON object, got {type(value).__name__}: {trigger!r}")
    kind = value.get("kind")
    if kind not in TRIGGER_KINDS:
        raise ValueError(f"trigger kind must be one of {TRIGGER_KINDS}, got {kind!r}")
    if kind == "drift":
        missing = [k for k in DRIFT_TRIGGER_FIELDS if value.get(k) in (None, "")]
        if missing:
            raise ValueError(f"a drift trigger needs {missing}: {trigger!r}")
    return dict(value)


def warm_start_dir(model_repository: str, init_from: str, model: str | None = None) -> str | None:
    """The model directory a warm start loads its checkpoint from.

    Args:
        model_repository: the Triton model repository the versions were published into.
        init_from: "" (from scratch), "serving" (the version serving now) or a version number.
        model: the served model's name (genline.contract.MODEL_NAME by default).

    Returns:
        The published model directory, or None for training from scratch.

    Raises:
        ValueError: "serving" while nothing serves, an unknown version, or one whose model
            directory is gone.
    """
    from genline.serving.registry import Registry

    if not init_from:
        return None
    name = model or contract.MODEL_NAME
    found = Registry().champion_dir(model_repository, name, init_from)
    if found is None:
        raise ValueError(
            f"init_from={init_from!r}: no version of {name} is serving from {model_repository}, "
            "so there is nothing to warm-start from (use init_from='' to train from scratch)")
    return found


def record_lineage(**kwargs: Any) -> bool:
    """Hand the publish-time ids to genline.lineage.record_publish when it exists.

    Returns:
        Whether a lineage record was written (False while genline.lineage has no record_publish).
    """
    from genline import lineage

    record = getattr(lineage, "record_publish", None)
    if record is None:
        return False
    record(**kwargs)
    return True


def challenger_outcome(gate: Any, champion_version: str, champion_dir: str | None) -> dict:
    """What the champion/challenger comparison decided, for metadata, tags and the alert.

    Args:
        gate: the GateResult (or gate.json) of the challenger, scored with the champion.
        champion_version: the pipeline's champion_version ("", "serving" or a number).
        champion_dir: the champion's model directory (None: no champion was compared).

    Returns:
        {"outcome": "no_champion" | "won" | "lost" | "failed_gate", "losses": [...],
        "summary": one line}. "lost" means the challenger passed every floor but did not beat
        the champion; "failed_gate" that it failed a floor (a champion loss may come with it).
    """
    from genline.gate import champion_losses, floors_passed

    if not champion_dir:
        return {"outcome": "no_champion", "losses": [], "summary": "no champion compared"}
    losses = champion_losses(gate)
    passed = gate.passed if hasattr(gate, "passed") else bool(gate.get("passed"))
    if passed:
        return {"outcome": "won", "losses": [], "summary":
                f"the challenger beat champion {champion_version} ({champion_dir})"}
    outcome = "lost" if floors_passed(gate) and losses else "failed_gate"
    lost = "; ".join(
        f"{x['metric']} {x['value']:.4f} vs champion {x['champion']:.4f} "
        f"({x['relative_change']:+.1%}, must be {x['rule']} the champion)"
        if x.get("value") is not None and x.get("champion") is not None
        and x.get("relative_change") is not None else f"{x['metric']} (not comparable)"
        for x in losses)
    floors = "; ".join(r for r in (gate.reasons if hasattr(gate, "reasons")
                                   else gate.get("reasons") or [])
                       if not r.startswith("challenger lost on"))
    summary = f"the challenger lost to champion {champion_version}: {lost}" if losses else (
        "the challenger failed the quality gate")
    if outcome == "failed_gate" and floors:
        summary += f" (and failed the gate: {floors})"
    return {"outcome": outcome, "losses": losses, "summary": summary}


def alert_challenger_lost(outcome: dict, *, model: str | None = None,
                          champion_version: str = "", dagster_run_id: str = "",
                          trigger: dict | None = None) -> dict | None:
    """Raise retrain.challenger_lost for a challenger that lost to the champion, or failed the
    gate while one was compared (None, nothing sent, otherwise).

    The alert names each metric that lost and by how much; one incident per Dagster run (or
    champion, when no run is known), so a rerun of the same step does not page twice.
    """
    from genline.alerts import send_alert

    if outcome.get("outcome") not in ("lost", "failed_gate"):
        return None
    name = model or contract.MODEL_NAME
    return send_alert(
        "retrain.gate",
        outcome["summary"],
        severity="warning",
        kind="retrain.challenger_lost",
        subject=f"{name}:{dagster_run_id or 'champion-' + str(champion_version)}",
        model=name,
        numbers={k: float(v) for x in outcome["losses"] for k, v in (
            (x["metric"], x.get("value")), (f"champion_{x['metric']}", x.get("champion")))
            if v is not None},
        details={"losses": outcome["losses"], "champion_version": champion_version,
                 "dagster_run_id": dagster_run_id, "trigger": trigger or {"kind": "manual"}},
    )


# --- drift episodes (the retrain sensor) ---------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """Consecutive drifting staleness windows of one served (model, version).

    An episode starts at a "drift" verdict and ends at the next "no_drift" one for the same
    (model, version); "insufficient_data" and "error" windows neither extend nor end it. Its key
    comes from its FIRST window, so every later drifting window of the same episode gives the
    same key (one run per episode), and the key is rebuilt from the verdict log alone (the
    same after a killed tick).

    Attributes:
        model, version: the served version that went stale.
        first_window, last_window: window keys of its first and newest drifting windows.
        windows: drifting windows so far.
        active: no "no_drift" verdict has ended it.
        latest: the newest drifting verdict (report path, scores) as JSON.
    """

    model: str
    version: int
    first_window: str
    last_window: str
    windows: int
    active: bool
    latest: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.model}:v{self.version}:{self.first_window}"

    def trigger(self) -> dict[str, Any]:
        """The pipeline's `trigger` for this episode (the newest drifting window's verdict)."""
        v = self.latest
        return {"kind": "drift", "episode": self.key, "model": self.model,
                "version": self.version, "window_key": v.get("window_key", self.last_window),
                "first_window": self.first_window, "report": v.get("report") or "",
                "scores": v.get("scores") or {}, "drifted": v.get("drifted") or []}


def drift_episodes(verdicts: Iterable[Any]) -> list[Episode]:
    """Group staleness verdicts into episodes, oldest first.

    Args:
        verdicts: genline.drift_verdicts.Verdict objects (or their JSON) of the staleness
            monitor. A window judged more than once (a backfill after a threshold change)
            counts with its newest verdict.

    Returns:
        Every episode, per (model, version) in window order; at most the last one is active.
    """
    newest: dict[tuple[str, int, str], dict[str, Any]] = {}
    for v in verdicts:
        d = v.to_json() if hasattr(v, "to_json") else dict(v)
        k = (d["model"], int(d["version"]), d["window_key"])
        if k not in newest or d.get("computed_at", 0) >= newest[k].get("computed_at", 0):
            newest[k] = d
    ordered = sorted(newest.values(), key=lambda d: (d["model"], int(d["version"]),
                                                     d.get("window_start", 0), d["window_key"]))
    episodes: list[Episode] = []
    current: dict[tuple[str, int], Episode] = {}
    for d in ordered:
        mv = (d["model"], int(d["version"]))
        ep = current.get(mv)
        if d["status"] == "drift":
            if ep is None:
                ep = Episode(mv[0], mv[1], d["window_key"], d["window_key"], 1, True, d)
            else:
                ep = replace(ep, last_window=d["window_key"], windows=ep.windows + 1, latest=d)
            current[mv] = ep
        elif d["status"] == "no_drift" and ep is not None:
            episodes.append(replace(ep, active=False))
            del current[mv]
    episodes.extend(current.values())
    return sorted(episodes, key=lambda e: (e.model, e.version, e.first_window))


def new_data_since(served_fingerprint: str | None, versions: list[Any]) -> tuple[bool, str]:
    """Whether accepted data newer than the serving model's training data exists.

    Args:
        served_fingerprint: the dataset fingerprint the serving version was trained on (the
            registry's lineage `dataset_fingerprint`); None when it is not recorded.
        versions: genline.versioning.list_versions(...), newest first.

    Returns:
        (True, why) when the newest training_dataset version holds other data than the served
        model was trained on; (False, why) otherwise.
    """
    if not versions:
        return False, "no training_dataset version exists"
    head = versions[0]
    if not served_fingerprint:
        return True, (f"the serving model's training data is not recorded; retraining on the "
                      f"newest training_dataset {head.md5[:12]}")
    head_fp = (head.info or {}).get("fingerprint")
    if head_fp == served_fingerprint:
        return False, (f"the newest training_dataset version {head.md5[:12]} is the data the "
                       "serving model was trained on")
    older = next((i for i, x in enumerate(versions)
                  if (x.info or {}).get("fingerprint") == served_fingerprint), None)
    if older is None:
        return True, (f"training_dataset {head.md5[:12]} (commit {head.commit[:8]}) is not the "
                      "data the serving model was trained on")
    return True, (f"training_dataset {head.md5[:12]} is {older} version(s) newer than the "
                  f"serving model's {versions[older].md5[:12]}")
