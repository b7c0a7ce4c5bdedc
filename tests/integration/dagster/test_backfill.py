"""A backfill over 5 daily partitions, launched the way the UI launches it (GraphQL), executed by
the backfill daemon's own iteration against a real instance."""

import logging
import time

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from genline.ingest import BatchStore, accepted_days
from genline.validation import CHECK_NAMES

from .retrain_daemon import workspace

pytestmark = pytest.mark.integration

DAYS = ["2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07"]


def test_backfill_five_partitions(instance, state):
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
    from dagster_graphql.test.utils import execute_dagster_graphql

    with workspace(instance) as context:
        result = execute_dagster_graphql(
            context.create_request_context(),
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            variables={
                "backfillParams": {
                    "partitionNames": DAYS,
                    "assetSelection": [{"path": ["incoming_batch"]}],
                }
            },
        )
        launched = result.data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        deadline = time.monotonic() + 240
        while instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED:
            assert time.monotonic() < deadline, "backfill did not finish"
            list(execute_backfill_iteration(context, logging.getLogger("backfill")))

    backfill = instance.get_backfill(backfill_id)
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert len(runs) == 5 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert sorted(r.tags["dagster/partition"] for r in runs) == DAYS

    key = dg.AssetKey("incoming_batch")
    materialized = instance.get_materialized_partitions(key)
    assert materialized == set(DAYS)
    for day in DAYS:
        for name in CHECK_NAMES:
            check = dg.AssetCheckKey(key, name)
            records = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
            evaluated = [r for r in records if r.partition == day]
            assert evaluated, f"no {name} evaluation for {day}"
            assert evaluated[0].event.dagster_event.event_specific_data.passed
    assert accepted_days(BatchStore.default()) == DAYS
