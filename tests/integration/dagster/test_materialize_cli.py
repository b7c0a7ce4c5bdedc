"""`genline data materialize` (the `make demo` step) records runs in the persistent instance."""

import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# Two months apart, one past and one after the date this was written: the simulated history and
# the partitions follow genline.clock, and Dagster's own wall clock is never consulted.
@pytest.mark.parametrize(
    ("now", "days"),
    [("2026-11-29T12:00:00Z", ["2026-11-27", "2026-11-28"]),
     ("2027-03-01T00:10:00Z", ["2027-02-27", "2027-02-28"])],
)
def test_materialize_then_path(tmp_path, now, days):
    env = dict(os.environ, GENLINE_HOME=str(tmp_path / "state"), GENLINE_NOW=now)
    env.pop("DAGSTER_HOME", None)
    genline = [sys.executable, "-m", "genline.cli"]
    out = subprocess.run(
        [*genline, "data", "materialize", "--days", "2"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2/2 daily batches accepted" in out.stdout
    # the full Dagster output goes to the log file whose path is printed (stdout: stage lines)
    log = out.stdout.split("full log: ")[1].splitlines()[0]
    assert [f"{d}: accepted" for d in days] == [
        ln for ln in open(log).read().splitlines() if ln.endswith(": accepted")
    ]
    md5 = re.search(r"^training_dataset ([0-9a-f]{32}):", out.stdout, re.M).group(1)
    path = subprocess.run(
        [*genline, "data", "path"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    assert path.endswith(f"{md5}/training_dataset.npz") and os.path.isfile(path)

    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "state" / "dagster_home")) as instance:
        runs = instance.get_run_records()
        assert len(runs) == 3 and all(r.dagster_run.is_success for r in runs)
        assert (
            instance.get_latest_materialization_event(
                dg.AssetKey("training_dataset")
            ).asset_materialization.tags["dagster/data_version"]
            == md5
        )
