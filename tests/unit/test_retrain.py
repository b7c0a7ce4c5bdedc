"""Drift episodes and the data-sufficiency rule of the retrain sensor (genline.retrain)."""

from __future__ import annotations

from genline.drift_verdicts import Verdict
from genline.retrain import drift_episodes, new_data_since
from genline.versioning.config import DatasetVersion


def v(hour: int, status: str, version: int = 1, computed: float | None = None) -> Verdict:
    return Verdict(monitor="staleness", status=status, model="m", version=version,
                   window_key=f"h{hour:02d}", window_start=hour * 3600.0,
                   window_end=(hour + 1) * 3600.0, n=500, report=f"r{hour}.html",
                   computed_at=computed if computed is not None else (hour + 1) * 3600.0)


def test_consecutive_drifting_windows_are_one_episode_keyed_by_the_first():
    eps = drift_episodes([v(1, "drift"), v(2, "insufficient_data"), v(3, "drift"),
                          v(4, "error"), v(5, "drift")])
    (ep,) = eps
    assert ep.key == "m:v1:h01" and ep.active and ep.windows == 3
    assert ep.last_window == "h05" and ep.trigger()["report"] == "r5.html"
    assert ep.trigger()["window_key"] == "h05" and ep.trigger()["first_window"] == "h01"


def test_no_drift_ends_an_episode_and_versions_are_apart():
    eps = drift_episodes([v(3, "drift"), v(1, "drift"), v(2, "no_drift"),  # out of order
                          v(4, "drift", version=2)])
    assert [(e.key, e.active) for e in eps] == [
        ("m:v1:h01", False), ("m:v1:h03", True), ("m:v2:h04", True)]


def test_a_rejudged_window_counts_with_its_newest_verdict():
    # a backfill after a threshold change turned window 2 from drift into no_drift
    eps = drift_episodes([v(1, "drift"), v(2, "drift"), v(2, "no_drift", computed=99_999.0),
                          v(3, "drift")])
    assert [(e.key, e.active, e.windows) for e in eps] == [
        ("m:v1:h01", False, 1), ("m:v1:h03", True, 1)]
    assert drift_episodes([v(1, "insufficient_data"), v(2, "no_drift")]) == []


def dv(md5: str, fp: str) -> DatasetVersion:
    return DatasetVersion(md5, 1, md5 * 2, "2026-11-29", "", {"fingerprint": fp})


def test_new_data_means_a_newest_version_other_than_the_served_data():
    assert new_data_since("a", [])[0] is False
    enough, why = new_data_since("a", [dv("22", "a"), dv("11", "z")])
    assert not enough and "is the data the serving model was trained on" in why
    enough, why = new_data_since("a", [dv("33", "c"), dv("22", "b"), dv("11", "a")])
    assert enough and "2 version(s) newer" in why
    enough, why = new_data_since(None, [dv("33", "c")])
    assert enough and "not recorded" in why
