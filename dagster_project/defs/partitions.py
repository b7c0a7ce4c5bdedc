"""Daily partitions of the incoming data, from a fixed first day up to yesterday by the clock.

A partitions definition is fixed when the code location loads, so its start cannot follow the
clock (a location loaded last month would disagree with one loaded today about which partitions
exist). It starts at a fixed day far enough back instead, PARTITIONS_START_DATE (a constant, not
an environment variable: nothing is read when the module is imported; a deployment whose data
starts earlier changes the constant). The last partition is the day before
`genline.clock.now()`: `partition_keys()` evaluates the definition at that instant, so a pinned
clock (GENLINE_NOW) moves Dagster's view with it.
Which days hold data is the simulation's or the drop folder's business, not the partitions'.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from genline import clock
from genline.ingest import parse_day

PARTITIONS_START_DATE = "2025-01-01"


def start_date() -> str:
    """The first partition, YYYY-MM-DD."""
    return parse_day(PARTITIONS_START_DATE).isoformat()


daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date())


@contextmanager
def at_clock() -> Iterator[None]:
    """Evaluate partitions at `genline.clock.now()` rather than Dagster's own wall clock."""
    with dg.partition_loading_context(effective_dt=clock.now()):
        yield


def partition_keys(last: int | None = None) -> list[str]:
    """The daily partition keys up to yesterday by the clock, oldest first (the last `last`).

    Raises:
        ValueError: the clock is before the first partition's end (nothing to ingest yet).
    """
    with at_clock():
        keys = daily_partitions.get_partition_keys()
    if not keys:
        raise ValueError(
            f"no daily partition has ended by {clock.now().isoformat()}: the first is "
            f"{start_date()} (PARTITIONS_START_DATE; pin the clock with {clock.ENV})"
        )
    return keys[-last:] if last else keys
