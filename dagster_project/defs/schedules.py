"""Daily automation: ingest yesterday's delivery at 01:00 UTC, rebuild the dataset at 03:00 UTC."""

from datetime import timedelta

import dagster as dg

from genline.ingest import simulated_day_index

from .jobs import ingest_job, training_dataset_job
from .partitions import start_date
from .resources import GenlineStateResource


@dg.schedule(job=ingest_job, cron_schedule="0 1 * * *", execution_timezone="UTC")
def daily_ingest_schedule(
    context: dg.ScheduleEvaluationContext, genline_state: GenlineStateResource
) -> dg.RunRequest | dg.SkipReason:
    """Ingest the day that just ended, if something was delivered (or is simulated) for it."""
    tick = context.scheduled_execution_time.date()
    day = (tick - timedelta(days=1)).isoformat()
    if day < start_date():
        return dg.SkipReason(f"{day} is before the first partition {start_date()}")
    store = genline_state.store()
    # The simulated history ends the day before the tick (as it ends yesterday by the clock when
    # the tick runs on time), so a late or replayed tick judges its own day, not today's.
    sim_days = genline_state.simulation_days
    sim_start = genline_state.start() or (tick - timedelta(days=sim_days)).isoformat()
    simulated = (
        genline_state.simulate_builtin
        and simulated_day_index(day, sim_start, sim_days) is not None
    )
    if store.delivery_dir(day).is_dir() or simulated:
        return dg.RunRequest(partition_key=day, run_key=f"ingest-{day}")
    return dg.SkipReason(f"no delivery for {day} in {store.incoming}")


daily_training_dataset_schedule = dg.ScheduleDefinition(
    name="daily_training_dataset_schedule",
    job=training_dataset_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Rebuild and version the training dataset from every accepted batch.",
)
