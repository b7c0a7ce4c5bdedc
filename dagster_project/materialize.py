"""Materialize the data assets into the persistent Dagster instance (what `make demo` runs).

    python -m dagster_project.materialize [--days N] [--no-dataset] [--train [--preset P]
        [--publish --model-repository DIR --triton-url HOST:PORT]]

Ingests the last N daily partitions up to yesterday by `genline.clock` (GENLINE_NOW pins it; the
built-in simulation delivers the days that have no delivery), then builds and versions
`training_dataset`. The runs land in $DAGSTER_HOME, so `dagster dev`
on the same home shows them. With --train, `generator_model` is materialized too: the Kubeflow
pipeline trains, gates, exports and (with --publish) publishes on the new dataset version.
Prints one JSON line: the training_dataset value (path, dvc_md5, ...) and the model's metadata.
"""

import argparse
import json
import sys
import warnings

import dagster as dg

from dagster_project.definitions import defs
from dagster_project.defs.partitions import at_clock, partition_keys
from genline.ingest import DEFAULT_SIM_DAYS


def train(instance: dg.DagsterInstance, config: dict) -> dict:
    """Materialize generator_model (the Kubeflow pipeline) with `config`; its metadata as JSON."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = defs().resolve_job_def("training_job")
    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"generator_model": {"config": config}}},
        raise_on_error=False,
    )
    mats = result.asset_materializations_for_node("generator_model")
    if not mats:
        return {"success": False, "run_id": result.run_id}
    meta = {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items() if k != "samples"}
    return {"success": result.success, "run_id": result.run_id, "metadata": meta}


def materialize(
    days: int | None = None, dataset: bool = True, instance: dg.DagsterInstance | None = None
) -> dict:
    """Run ingest_job for the last `days` partitions, then training_dataset_job.

    Args:
        days: how many daily partitions, ending yesterday by `genline.clock`; None: the
            simulated history's length (DEFAULT_SIM_DAYS).
        dataset: also build and version training_dataset.
        instance: the Dagster instance (default: $DAGSTER_HOME's).

    Returns:
        {"partitions": {day: "accepted"|"quarantined"}, "training_dataset": value or None}
    """
    instance = instance or dg.DagsterInstance.get()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        location = defs()
        ingest = location.resolve_job_def("ingest_job")
        build = location.resolve_job_def("training_dataset_job")
    # Partitions as of genline.clock (GENLINE_NOW pins it), also inside the runs, which check
    # that their partition key exists.
    with at_clock():
        keys = partition_keys(days or DEFAULT_SIM_DAYS)
        status = {}
        for key in keys:
            result = ingest.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False
            )
            mats = [m for m in result.asset_materializations_for_node("incoming_batch")]
            status[key] = mats[-1].metadata["status"].value if mats else "failed"
            print(f"{key}: {status[key]}", file=sys.stderr)
        out: dict = {"partitions": status, "training_dataset": None}
        if dataset:
            result = build.execute_in_process(instance=instance, raise_on_error=False)
            if result.success:
                out["training_dataset"] = result.output_for_node("training_dataset")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=None, help="the last N days (default: the simulated history)"
    )
    parser.add_argument("--no-dataset", action="store_true", help="skip training_dataset")
    parser.add_argument("--train", action="store_true", help="then materialize generator_model")
    parser.add_argument("--preset", default=None, help="training preset (ci, default)")
    parser.add_argument("--publish", action="store_true", help="publish if the gate passes")
    parser.add_argument("--model-repository", default=None, help="Triton model repository")
    parser.add_argument("--triton-url", default=None, help="Triton gRPC address")
    args = parser.parse_args(argv)
    instance = dg.DagsterInstance.get()
    out = materialize(args.days, not args.no_dataset, instance)
    ok = out["training_dataset"] is not None or args.no_dataset
    if args.train and ok:
        config = {"publish": args.publish}
        for key in ("preset", "model_repository", "triton_url"):
            if getattr(args, key):
                config[key] = getattr(args, key)
        out["generator_model"] = train(instance, config)
        ok = out["generator_model"]["success"]
    print(json.dumps(out, sort_keys=True, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
