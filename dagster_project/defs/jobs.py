"""A job per stage: ingest one day's batch (partitioned), and rebuild the training dataset."""

import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("incoming_batch"),
    description="Validate one day's delivery: accept it or quarantine it.",
)

training_dataset_job = dg.define_asset_job(
    "training_dataset_job",
    selection=dg.AssetSelection.assets("training_dataset"),
    description="Union the accepted batches and record a DVC version.",
)
