"""The stamps that tie the files of one model directory to one training run.

`genline train` draws one run id and stores it in checkpoint.pt; every JSON file made from that
checkpoint (dataset.json by training, metrics.json and gate.json by evaluation, export.json by
export) carries the run id and the checkpoint's sha256 as top-level keys. A directory whose files
disagree was mixed by hand or by a crash, and `check_stamps` says which file is out of line.

The lineage of a published version (data version -> ... -> Triton version -> trigger, then what
it served) is written by genline.lineage_record and read by genline.lineage_report;
`record_publish` here is the publish step's entry point.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from genline import contract
from genline.fsutil import read_json, sha256_file


def new_run_id() -> str:
    """A fresh run id (uuid4, hex)."""
    return uuid.uuid4().hex


def stamp(checkpoint: str | Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The stamp for files made from `checkpoint` (whose loaded content is `ckpt`)."""
    return {contract.RUN_ID_KEY: ckpt.get(contract.RUN_ID_KEY),
            contract.CHECKPOINT_SHA256_KEY: sha256_file(checkpoint)}


def check_stamps(model_dir: str | Path) -> list[str]:
    """Problems that make `model_dir` a mix of runs; empty when every stamp agrees.

    Each stamped file must exist, carry both keys, and agree with the checkpoint's sha256 and
    with each other on the run id.
    """
    model_dir = Path(model_dir)
    ckpt = model_dir / contract.CHECKPOINT
    if not ckpt.is_file():
        return [f"{ckpt} is missing"]
    actual = sha256_file(ckpt)
    problems: list[str] = []
    run_ids: dict[str, str] = {}
    for name in contract.STAMPED_FILES:
        path = model_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        data = read_json(path)
        rid, sha = data.get(contract.RUN_ID_KEY), data.get(contract.CHECKPOINT_SHA256_KEY)
        if not rid or not sha:
            problems.append(f"{name} carries no run stamp ({contract.RUN_ID_KEY}, "
                            f"{contract.CHECKPOINT_SHA256_KEY}): it predates stamping or was "
                            "written by hand")
            continue
        run_ids[name] = rid
        if sha != actual:
            problems.append(f"{name} was made from checkpoint sha256 {sha[:12]}..., but "
                            f"{contract.CHECKPOINT} is {actual[:12]}...")
    if len(set(run_ids.values())) > 1:
        listed = ", ".join(f"{n}: {r[:12]}" for n, r in run_ids.items())
        problems.append(f"files come from different training runs ({listed})")
    return problems


def record_publish(**kwargs: Any) -> Path:
    """Write the lineage record of a just-published version: genline.lineage_record."""
    from genline.lineage_record import record_publish as record

    return record(**kwargs)
