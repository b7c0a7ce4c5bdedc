"""What publish checks in a model directory before any version number is assigned.

A model directory (`genline train --out DIR`) is published only when it is one training run's
output: the gate passed (gate.json is self-consistent and is the verdict of genline.gate on
metrics.json with the config it records, no looser than the defaults unless allowed),
export.json describes the served graph, the four stamped JSON files (contract.STAMPED_FILES)
carry the same run id and checkpoint sha256 and checkpoint.pt still has that sha256, the class
list is consistent, and every served ONNX file is self-contained (no tensor reads its bytes from
a file publish neither stages nor verifies).

Each check raises ModelDirError with a message that names the file, key or tensor at fault.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from genline import contract
from genline.fsutil import read_json
from genline.gate import GateConfig, check_gate
from genline.serving.onnx_checks import external_data_problem


class ModelDirError(ValueError):
    """The model directory cannot be published (the message says which file and why).

    Attributes:
        kind: which check refused it ("gate", "export", "stamps", "classes", "onnx", ...):
            stable across repeats, so a repeated refusal is one incident.
    """

    kind: str = "model_dir"


@contextlib.contextmanager
def _refusal_kind(kind: str) -> Iterator[None]:
    """Label the ModelDirError raised inside with `kind`."""
    try:
        yield
    except ModelDirError as exc:
        exc.kind = kind
        raise


@dataclass(frozen=True)
class ModelDir:
    """A model directory that passed every check, with what publish needs from its files."""

    path: Path
    gate: dict[str, Any]
    export: dict[str, Any]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    run_id: str
    checkpoint_sha256: str
    classes: list[str] | None  # None when training recorded only the count

    @property
    def serving_variant(self) -> str:
        return self.export.get("serving_variant", contract.ONNX_FP32)

    @property
    def meta(self) -> dict[str, Any]:
        """What the Triton backend reads from serving.json (plus the class names)."""
        return {
            "num_classes": int(self.export["num_classes"]),
            "latent_dim": int(self.export["latent_dim"]),
            "image_shape": [int(d) for d in self.export["image_shape"]],
            "classes": self.classes,
        }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    return data


def read_model_dir(model_dir: Path, *, allow_custom_gate: bool = False) -> ModelDir:
    """Read and check a model directory (gate, export, stamps, classes, self-contained ONNX).

    Args:
        model_dir: the directory `genline train` wrote.
        allow_custom_gate: accept a gate.json whose config is looser than GateConfig().

    Returns:
        The checked directory.

    Raises:
        ModelDirError: the first check that failed, naming the file and values.
    """
    with _refusal_kind("missing"):
        if not model_dir.is_dir():
            raise ModelDirError(f"model directory {model_dir} does not exist")
    with _refusal_kind("gate"):
        gate, metrics = _checked_gate(model_dir, allow_custom_gate)
    with _refusal_kind("export"):
        export_path = model_dir / contract.EXPORT_REPORT
        if not export_path.is_file():
            raise ModelDirError(
                f"{export_path} is missing: run `genline export --model {model_dir}`"
            )
        export = _read(export_path)
        for key in ("num_classes", "latent_dim", "image_shape", "files"):
            if key not in export:
                raise ModelDirError(f"{export_path} lacks {key!r}")
    with _refusal_kind("stamps"):
        run_id, ckpt_sha = check_stamps(model_dir)
    with _refusal_kind("student"):
        if export.get("serving_variant") in contract.STUDENT_VARIANTS:
            metrics = {**metrics, "student": check_student(model_dir, export, run_id, ckpt_sha)}
    with _refusal_kind("export"):
        if export.get("serving_variant") == contract.ONNX_INT8:
            int8 = export.get("int8") or {}
            if not int8.get("adopted"):
                raise ModelDirError("export.json serves the teacher's INT8 graph without having "
                                    "adopted it")
            metrics = {**metrics, "int8": dict(int8.get("metrics_int8") or {})}
    with _refusal_kind("classes"):
        dataset = _read(model_dir / contract.DATASET_INFO)
        classes = check_classes(model_dir, export, dataset)
    with _refusal_kind("onnx"):
        for name in {export.get("serving_variant", contract.ONNX_FP32), contract.EVALUATOR_ONNX}:
            if (model_dir / name).is_file():
                check_self_contained_onnx(model_dir / name)
    return ModelDir(
        path=model_dir,
        gate=gate,
        export=export,
        metrics=metrics,
        dataset=dataset,
        run_id=run_id,
        checkpoint_sha256=ckpt_sha,
        classes=classes,
    )


def _checked_gate(model_dir: Path, allow_custom_gate: bool) -> tuple[dict, dict]:
    """gate.json and metrics.json, once check_gate_record accepts them."""
    gate_path = model_dir / contract.GATE
    if not gate_path.is_file():
        raise ModelDirError(f"{gate_path} is missing: only a gated model can be published")
    gate = _read(gate_path)
    if gate.get("passed") is not True:
        reasons = "; ".join(map(str, gate.get("reasons") or [])) or "no reasons given"
        raise ModelDirError(f"{model_dir} did not pass its quality gate: {reasons}")
    metrics_path = model_dir / contract.METRICS
    if not metrics_path.is_file():
        raise ModelDirError(f"{metrics_path} is missing: the gate cannot be re-checked")
    metrics = _read(metrics_path)
    check_gate_record(model_dir, gate, metrics, allow_custom_gate=allow_custom_gate)
    return gate, metrics


def check_stamps(model_dir: Path) -> tuple[str, str]:
    """The run id and checkpoint sha256 every stamped file agrees on (and checkpoint.pt has).

    A directory assembled from two runs (gate.json of one, model.onnx of another) would publish
    a model under metrics it never earned; the stamps (genline.lineage) make that visible.

    Returns:
        (run_id, checkpoint_sha256)

    Raises:
        ModelDirError: a stamped file is missing or lacks a stamp, the files disagree, or
            checkpoint.pt's sha256 differs from the stamp; every problem is listed.
    """
    from genline.lineage import check_stamps as stamp_problems

    problems = stamp_problems(model_dir)
    if problems:
        raise ModelDirError(
            f"{model_dir} is not one training run's output: {'; '.join(problems)} "
            "(publish the directory `genline train` wrote, unchanged)"
        )
    first = _read(model_dir / contract.STAMPED_FILES[0])
    return first[contract.RUN_ID_KEY], first[contract.CHECKPOINT_SHA256_KEY]


def check_student(model_dir: Path, export: dict, run_id: str, ckpt_sha: str) -> dict:
    """A distilled student may serve only when distill.json comes from this run's checkpoint,
    its gate passed, export.json adopted it and student.pt is the file it recorded.

    Returns:
        The student's metrics (what the served graph earned; recorded in lineage).
    """
    from genline.fsutil import sha256_file

    path = model_dir / contract.DISTILL_REPORT
    if not path.is_file():
        raise ModelDirError(f"export.json serves the student ({export['serving_variant']}) "
                            f"but {path} is missing")
    report = _read(path)
    if (report.get(contract.RUN_ID_KEY), report.get(contract.CHECKPOINT_SHA256_KEY)) != (
            run_id, ckpt_sha):
        raise ModelDirError(f"{path} was distilled from another training run or checkpoint")
    if not report.get("student_gate", {}).get("passed") or not report.get("adoptable"):
        raise ModelDirError(f"{path}: the student did not pass its gate or the adoption rule: "
                            f"{'; '.join(report.get('reasons') or []) or 'no reasons given'}")
    if not export.get("student", {}).get("adopted"):
        raise ModelDirError("export.json serves the student without having adopted it")
    student = model_dir / contract.STUDENT_CHECKPOINT
    if not student.is_file() or sha256_file(student) != report.get("student_sha256"):
        raise ModelDirError(f"{student} is missing or differs from the one {path} records")
    if export.get("serving_variant") == contract.ONNX_STUDENT_INT8:
        int8 = export["student"].get("int8") or {}
        if not int8.get("adopted"):
            raise ModelDirError("export.json serves the student's INT8 graph without having "
                                "adopted it")
        return dict(int8.get("metrics_int8") or {})  # what the served graph earned
    return dict(report.get("metrics_student") or {})


def check_classes(model_dir: Path, export: dict, dataset: dict) -> list[str] | None:
    """The class names training recorded (export.json and dataset.json must agree with each
    other and with num_classes); None when neither file records names."""
    n = int(export["num_classes"])
    recorded = {
        name: [str(c) for c in data["classes"]]
        for name, data in ((contract.EXPORT_REPORT, export), (contract.DATASET_INFO, dataset))
        if isinstance(data.get("classes"), list)
    }
    lists = list(recorded.values())
    if len(lists) == 2 and lists[0] != lists[1]:
        raise ModelDirError(
            f"{model_dir}: export.json records classes {format_classes(lists[0])} but "
            f"dataset.json {format_classes(lists[1])}"
        )
    if lists and len(lists[0]) != n:
        raise ModelDirError(
            f"{model_dir}: {len(lists[0])} class names {format_classes(lists[0])} but "
            f"export.json num_classes is {n}"
        )
    return lists[0] if lists else None


def format_classes(classes: list[str] | None, count: int | None = None) -> str:
    """`['a', 'b']`; long lists as `['0', '1', ..., '9'] (10 classes)`."""
    if classes is None:
        return f"{count} unnamed classes"
    if len(classes) <= 8:
        return repr(list(classes))
    head = ", ".join(map(repr, classes[:3]))
    return f"[{head}, ..., {classes[-1]!r}] ({len(classes)} classes)"


def class_change(new: dict[str, Any], old: dict[str, Any], old_version: int) -> str | None:
    """Why `new` (a serving.json meta) would change the served class set, or None.

    Names are compared when both versions record them, else only the counts.
    """
    new_n, old_n = int(new["num_classes"]), int(old["num_classes"])
    new_c, old_c = new.get("classes"), old.get("classes")
    if new_c is not None and old_c is not None:
        if list(new_c) == list(old_c):
            return None
    elif new_n == old_n:
        return None
    return (
        f"classes {format_classes(new_c, new_n)} differ from serving version {old_version}'s "
        f"{format_classes(old_c, old_n)}"
    )


def check_self_contained_onnx(path: Path) -> None:
    """Refuse an ONNX file with external data (see genline.serving.onnx_checks).

    Raises:
        ModelDirError: naming the tensor and its location.
    """
    problem = external_data_problem(path)
    if problem:
        raise ModelDirError(problem)


# --- the gate, re-checked ------------------------------------------------------------------------

# Which way each GateConfig bound tightens: a larger max_* / champion_margin is looser, a smaller
# min_* is looser.
_LOOSER_WHEN_HIGHER = ("max_fd_ratio", "champion_margin")


def looser_bounds(cfg: GateConfig, default: GateConfig = GateConfig()) -> list[str]:
    """Each bound of `cfg` that lets through more than `default`, as `name = value (default d)`."""
    looser = []
    for f in fields(GateConfig):
        value, ref = getattr(cfg, f.name), getattr(default, f.name)
        if (value > ref) if f.name in _LOOSER_WHEN_HIGHER else (value < ref):
            looser.append(f"{f.name} = {value} (default {ref})")
    return looser


def _recorded_config(gate_path: Path, gate: dict[str, Any]) -> GateConfig:
    """The GateConfig gate.json records (unknown keys ignored; defaults when none is recorded)."""
    recorded = gate.get("config")
    if recorded is None:
        return GateConfig()
    if not isinstance(recorded, dict):
        raise ModelDirError(
            f"{gate_path}: 'config' is a {type(recorded).__name__}, expected an "
            "object of GateConfig bounds"
        )
    values: dict[str, Any] = {}
    for f in fields(GateConfig):
        if f.name not in recorded:
            continue
        v = recorded[f.name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ModelDirError(f"{gate_path}: config {f.name} = {v!r} is not a finite number")
        values[f.name] = v
    return GateConfig(**values)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return False
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_gate_record(
    model_dir: Path,
    gate: dict[str, Any],
    metrics: dict[str, Any],
    *,
    allow_custom_gate: bool = False,
) -> None:
    """Refuse a gate.json that is not the verdict of the gate on this metrics.json.

    gate.json must be self-consistent (passed true, no reasons, every check passed), the gate
    (genline.gate.check_gate, with the config gate.json records; champion checks are not
    re-applied) must pass on metrics.json with the values and bounds gate.json records, and a
    config looser than GateConfig() on any bound needs `allow_custom_gate`.

    Raises:
        ModelDirError: naming the file, the check and the values.
    """
    gate_path, metrics_path = model_dir / contract.GATE, model_dir / contract.METRICS
    if gate.get("passed") is not True:
        reasons = "; ".join(map(str, gate.get("reasons") or [])) or "no reasons given"
        raise ModelDirError(f"{model_dir} did not pass its quality gate: {reasons}")
    reasons = gate.get("reasons")
    if reasons:
        listed = "; ".join(map(str, reasons)) if isinstance(reasons, list) else repr(reasons)
        raise ModelDirError(f"{gate_path} says passed but lists reasons it failed: {listed}")
    checks = gate.get("checks")
    if not isinstance(checks, dict) or not checks:
        raise ModelDirError(f"{gate_path} says passed but records no checks")
    failed = [
        f"{name} (value {c.get('value')!r}, {c.get('op', '')} {c.get('bound')!r})"
        if isinstance(c, dict)
        else f"{name} ({c!r})"
        for name, c in checks.items()
        if not isinstance(c, dict) or c.get("passed") is not True
    ]
    if failed:
        raise ModelDirError(f"{gate_path} says passed but these checks failed: {', '.join(failed)}")
    cfg = _recorded_config(gate_path, gate)
    looser = looser_bounds(cfg)
    if looser and not allow_custom_gate:
        raise ModelDirError(
            f"{gate_path} was gated with bounds looser than the defaults: {', '.join(looser)}; "
            "pass --allow-custom-gate (publish(..., allow_custom_gate=True)) to publish it"
        )
    verdict = check_gate(metrics, None, cfg)
    if not verdict.passed:
        raise ModelDirError(
            f"{metrics_path} does not pass the gate {gate_path} records as passed: "
            f"{'; '.join(verdict.reasons)}"
        )
    for name, check in verdict.checks.items():
        recorded = checks.get(name)
        if recorded is None:
            raise ModelDirError(f"{gate_path} lacks the check {name!r} the gate applies")
        for key in ("value", "bound"):
            if not _same(recorded.get(key), check[key]):
                where = metrics_path if key == "value" else f"{gate_path} config"
                raise ModelDirError(
                    f"{gate_path} records {name} {key} {recorded.get(key)!r} but {where} gives "
                    f"{check[key]!r}: gate.json is not the verdict on this metrics.json"
                )
