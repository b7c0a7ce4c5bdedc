"""Daily partitions of the incoming data, from a configurable start date.

The start date is read when the code location loads (a partitions definition is fixed at load):
`GENLINE_DATA_START_DATE=YYYY-MM-DD`, default genline.ingest.DEFAULT_START_DATE.
"""

import os

import dagster as dg

from genline.ingest import DEFAULT_START_DATE, parse_day

START_DATE_ENV = "GENLINE_DATA_START_DATE"


def start_date() -> str:
    return parse_day(os.environ.get(START_DATE_ENV) or DEFAULT_START_DATE).isoformat()


daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date())
