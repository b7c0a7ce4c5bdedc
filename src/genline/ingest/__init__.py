"""Daily batches: the drop folder, the built-in simulation, quarantine and the accepted store.

    <root>/incoming/<YYYY-MM-DD>/    deliveries: an .npz, or one subfolder per class of images
    <root>/accepted/<YYYY-MM-DD>/    batch.npz (canonical) + validation.json of accepted batches
    <root>/quarantine/<YYYY-MM-DD>/<UTC time>/
                                     a rejected delivery, moved as delivered, + validation.json;
                                     kept, never deleted

`<root>` is genline's state directory unless configured. The built-in simulation splits the UCI
digits into `days` daily batches (stratified by class, rows assigned by content hash), so there is
a real history to look at and backfill; it writes each day into the drop folder like any sender.
The simulated history is the `days` days that end yesterday by `genline.clock` (or a window from
a given start). A date's batch is `date.toordinal() % days`: fixed for the date whatever the
clock says, and any `days` consecutive dates hold every batch once, so the demo, the schedule and
`--days N` find data on any date and re-ingesting a day never changes its content.

Only accepted batches ever reach `build_training_dataset`.
"""

from genline.ingest.batch import IngestOutcome, ingest_batch
from genline.ingest.delivery import delivery_sha256, read_delivery
from genline.ingest.simulation import (
    DEFAULT_SIM_DAYS,
    STYLES,
    apply_style,
    deliver_simulated,
    simulate_history,
    simulated_batches,
    simulated_day_index,
    simulation_window,
    styled,
)
from genline.ingest.store import (
    BATCH_FILE,
    RESULT_FILE,
    BatchStore,
    accepted_days,
    parse_day,
    quarantined,
)
from genline.ingest.training_set import build_training_dataset, sample_grid_png, write_sample_grid

__all__ = [
    "BATCH_FILE",
    "DEFAULT_SIM_DAYS",
    "RESULT_FILE",
    "STYLES",
    "BatchStore",
    "IngestOutcome",
    "accepted_days",
    "apply_style",
    "build_training_dataset",
    "deliver_simulated",
    "delivery_sha256",
    "ingest_batch",
    "parse_day",
    "quarantined",
    "read_delivery",
    "sample_grid_png",
    "simulate_history",
    "simulated_batches",
    "simulated_day_index",
    "simulation_window",
    "styled",
    "write_sample_grid",
]
