"""The daily schedule and the drop-folder sensor decide runs from what was delivered."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from dagster_project.defs.resources import GenlineStateResource
from dagster_project.defs.schedules import daily_ingest_schedule
from dagster_project.defs.sensors import incoming_delivery_sensor
from genline.ingest import BatchStore, deliver_simulated

pytestmark = pytest.mark.integration


def _schedule_at(instance, when: datetime, **resource_kw):
    ctx = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"genline_state": GenlineStateResource(**resource_kw)},
    )
    return daily_ingest_schedule(ctx)


def test_daily_schedule_targets_the_day_that_ended(instance, state):
    result = _schedule_at(instance, datetime(2026, 11, 5, 1, tzinfo=UTC))
    assert isinstance(result, dg.RunRequest) and result.partition_key == "2026-11-04"
    # The simulation ends the day before the tick, so the schedule finds data on any date
    # (it skipped every day after 2026-11-28 when the history was fixed to November 2026).
    for when in (datetime(2026, 12, 20, 1, tzinfo=UTC), datetime(2031, 3, 2, 1, tzinfo=UTC)):
        result = _schedule_at(instance, when)
        expected = (when.date() - timedelta(days=1)).isoformat()
        assert isinstance(result, dg.RunRequest) and result.partition_key == expected
    # Without the simulation and with nothing delivered: skip and say why.
    result = _schedule_at(instance, datetime(2026, 12, 20, 1, tzinfo=UTC), simulate_builtin=False)
    assert isinstance(result, dg.SkipReason) and "no delivery for 2026-12-19" in result.skip_message
    # A real delivery makes it run, simulation or not.
    BatchStore.default().delivery_dir("2026-12-19").mkdir(parents=True)
    result = _schedule_at(instance, datetime(2026, 12, 20, 1, tzinfo=UTC), simulate_builtin=False)
    assert isinstance(result, dg.RunRequest) and result.partition_key == "2026-12-19"
    result = _schedule_at(instance, datetime(2025, 1, 1, 1, tzinfo=UTC))
    assert isinstance(result, dg.SkipReason)  # 2024-12-31 precedes the first partition


def test_delivery_sensor_one_run_per_delivery(instance, state):
    store = BatchStore.default()
    ctx = dg.build_sensor_context(
        instance=instance, resources={"genline_state": GenlineStateResource()}
    )
    assert isinstance(incoming_delivery_sensor(ctx), dg.SkipReason)
    for day in ("2026-11-02", "2026-11-03"):
        deliver_simulated(store, day)
    (store.incoming / "not-a-date").mkdir()
    (store.incoming / "2026-11-04").mkdir()  # empty: not yet a delivery
    requests = incoming_delivery_sensor(ctx)
    assert [r.partition_key for r in requests] == ["2026-11-02", "2026-11-03"]
    first_keys = {r.run_key for r in requests}
    # A changed delivery gets a new run key; an unchanged one keeps its key (Dagster dedups).
    np.savez(
        store.delivery_dir("2026-11-03") / "batch.npz",
        images=np.zeros((1, 8, 8)),
        labels=np.zeros(1, np.int64),
    )
    again = {r.run_key for r in incoming_delivery_sensor(ctx)}
    assert len(again & first_keys) == 1 and len(again) == 2
