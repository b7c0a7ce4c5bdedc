"""The Dagster side of `genline demo`: runs into the persistent instance, one JSON line out.

    python -m dagster_project.demo_steps ingest --first DAY --last DAY
    python -m dagster_project.demo_steps train --preset P [--publish --model-repository DIR
        --triton-url HOST:PORT]
    python -m dagster_project.demo_steps runs --job training_job [--tag KEY]

`ingest` runs ingest_job for each day of an explicit range (the demo keeps the last days of the
simulated window free for the new-style deliveries), then training_dataset_job. `train` runs
training_job (the Kubeflow pipeline) without ingesting anything. `runs` lists runs of a job
(status, tags) so the CLI, which never imports Dagster, can follow what the daemon launched.
"""

import argparse
import json
import sys
import warnings
from datetime import date, timedelta

import dagster as dg

from dagster_project.definitions import defs
from dagster_project.defs.partitions import at_clock
from dagster_project.materialize import train


def ingest(instance: dg.DagsterInstance, first: str, last: str) -> dict:
    """ingest_job for every day first..last (inclusive), then training_dataset_job."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        location = defs()
        job = location.resolve_job_def("ingest_job")
        build = location.resolve_job_def("training_dataset_job")
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    if d1 < d0:
        raise SystemExit(f"--last {last} is before --first {first}")
    status, warned, runs = {}, {}, []
    with at_clock():
        for i in range((d1 - d0).days + 1):
            key = (d0 + timedelta(days=i)).isoformat()
            result = job.execute_in_process(partition_key=key, instance=instance,
                                            raise_on_error=False)
            mats = result.asset_materializations_for_node("incoming_batch")
            meta = mats[-1].metadata if mats else {}
            status[key] = meta["status"].value if mats else "failed"
            warned[key] = [e.check_name for e in result.get_asset_check_evaluations()
                           if not e.passed and e.severity == dg.AssetCheckSeverity.WARN]
            runs.append(result.run_id)
            print(f"{key}: {status[key]}", file=sys.stderr)
        out: dict = {"partitions": status, "warned": warned, "runs": runs,
                     "training_dataset": None}
        result = build.execute_in_process(instance=instance, raise_on_error=False)
        if result.success:
            out["training_dataset"] = result.output_for_node("training_dataset")
            out["training_dataset_run"] = result.run_id
    return out


def runs(instance: dg.DagsterInstance, job: str, tag: str | None) -> dict:
    """Runs of `job` (newest first): id, status, tags, start and end times."""
    out = []
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=20):
        run = record.dagster_run
        if tag and tag not in run.tags:
            continue
        out.append({"run_id": run.run_id, "status": run.status.value, "tags": dict(run.tags),
                    "start": record.start_time, "end": record.end_time})
    return {"runs": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("--first", required=True)
    p.add_argument("--last", required=True)
    p = sub.add_parser("train")
    p.add_argument("--preset", default=None)
    p.add_argument("--publish", action="store_true")
    p.add_argument("--model-repository", default=None)
    p.add_argument("--triton-url", default=None)
    p = sub.add_parser("runs")
    p.add_argument("--job", required=True)
    p.add_argument("--tag", default=None)
    args = parser.parse_args(argv)
    instance = dg.DagsterInstance.get()
    ok = True
    if args.step == "ingest":
        out = ingest(instance, args.first, args.last)
        ok = out["training_dataset"] is not None
    elif args.step == "train":
        config = {"publish": args.publish}
        for key in ("preset", "model_repository", "triton_url"):
            if getattr(args, key):
                config[key] = getattr(args, key)
        out = train(instance, config)
        ok = out["success"]
    else:
        out = runs(instance, args.job, args.tag)
    print(json.dumps(out, sort_keys=True, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
