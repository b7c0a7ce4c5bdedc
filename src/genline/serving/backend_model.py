"""The model Triton's python backend runs: the generator ONNX under ONNX Runtime.

`genline publish` copies this file into every version as `<N>/model.py`, so each version keeps
the code it passed its canary with. It runs inside the backend stub, whose Python is the venv's
(see server.py), so numpy, onnxruntime and genline import normally.

Per `execute` call (one dynamic batch of requests):
  1. a request Triton already marks cancelled (the client cancelled it, or its gRPC deadline
     expired and the frontend cancelled it) gets a CANCELLED error and is not run; asking is
     a synchronous round trip to the server per request, so a model cheaper than
     CHEAP_MODEL_MS per image asks only about requests whose declared deadline has passed
     (should_ask_cancelled);
  2. each other request is validated on its own (label range, NaN/Inf, batch agreement, empty
     batch); a bad request gets an INVALID_ARGUMENT error and does not disturb its batch-mates;
  3. with the test-only pause on, cancellation is checked between its slices; then the valid
     requests run as one ONNX Runtime call;
  4. one prediction-log record per request, with its outcome in `status` (OK, INVALID_ARGUMENT,
     CANCELLED or INTERNAL), is appended to the spool: the batch's records in one write syscall
     (Parquet and evaluator features happen later, off the request path).

The server cannot tell a client's explicit cancel from an expired deadline: Triton's gRPC
frontend turns both into the same cancellation, so both are logged as CANCELLED (what the
server knows), with the point at which it noticed in `error`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np

# The stub's Python is the venv's, so genline imports here as it does anywhere (see server.py).
from genline import contract
from genline.serving.features import EMBEDDING_FILE
from genline.serving.request_checks import InputError, validate

LABEL, Z, IMAGE = contract.INPUT_LABEL, contract.INPUT_Z, contract.OUTPUT_IMAGE
WARMUP = contract.WARMUP_INPUT
SERVING_META = contract.SERVING_META
# Test hook, honoured only when set in the server's environment at start (read in initialize):
# every execute() pauses this many seconds before running the generator, in slices of
# PAUSE_SLICE_S with a cancellation check after each, so deadline, cancellation and shutdown
# tests are deterministic instead of racing a sub-millisecond model. With the hook on (and only
# then), a request parameter TEST_DELAY_PARAM sets the pause of the batch it is in; a pause
# ends early once every request of the batch is cancelled.
TEST_DELAY_ENV = "GENLINE_TEST_EXECUTE_DELAY_S"
TEST_DELAY_PARAM = "genline_test_delay_s"
PAUSE_SLICE_S = 0.01
# Request parameter the genline client sends: its per-attempt deadline as epoch seconds (its
# own clock). Only used to name a cancellation DEADLINE_EXCEEDED when that time has passed.
DEADLINE_PARAM = contract.DEADLINE_PARAM
# A model whose single image runs faster than this (warm, measured at load) costs less than the
# serving stack around it (~1 ms of CPU per request on 2 cores): it runs on one ONNX Runtime
# thread (ort_threads) and asks Triton about cancellation only when a request's declared
# deadline has passed (should_ask_cancelled).
CHEAP_MODEL_MS = 1.0
CANCELLED_QUEUED = "cancelled before the batch ran (client cancel or expired gRPC deadline)"
CANCELLED_PAUSED = "cancelled while the batch waited (client cancel or expired gRPC deadline)"


def test_delay_s(environ: dict[str, str] | None = None) -> float | None:
    """The test-only pause per execute() from `GENLINE_TEST_EXECUTE_DELAY_S`.

    Returns:
        Seconds (>= 0), or None when the variable is unset (the hook is off).

    Raises:
        ValueError: the variable is set but not a finite number of seconds >= 0 (the model then
            fails to load, loudly, instead of serving without the pause a test relies on).
    """
    raw = (os.environ if environ is None else environ).get(TEST_DELAY_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{TEST_DELAY_ENV}={raw!r}: expected seconds >= 0, e.g. 0.5")
    return value


def is_cancelled(request) -> bool:
    """Whether Triton marked `request` cancelled (False on backends without the API)."""
    check = getattr(request, "is_cancelled", None)
    return bool(check()) if check is not None else False


def single_image_ms(run, latent_dim: int, repeats: int = 5) -> float:
    """The fastest of `repeats` warm single-image runs of `run(labels, z)`, in ms."""
    labels, z = np.zeros(1, np.int64), np.zeros((1, latent_dim), np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(labels, z)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def should_ask_cancelled(cheap: bool, params: dict, now: float) -> bool:
    """Whether execute() asks Triton if this request was cancelled before running it.

    Asking is a synchronous round trip from the stub to the server per request: measured in
    benchmarks/distill.py, the FP32 student served single images at 880/s asking every request
    and 1,235/s not asking (10.3x vs 5.9x the teacher of each run), at the same CPU per request.
    Triton's core already drops most requests cancelled in its queue; the ones it hands over
    anyway (one of three in tests/integration/serving/test_cancel_deadline.py's setup) are what
    the question catches. A model that costs more than CHEAP_MODEL_MS per image always asks
    (not running the request saves more than asking costs), and so does a cheap one for a
    request whose declared deadline (`genline_deadline`, sent by GenlineClient) has passed on
    the server's clock. A cheap model does not ask about other requests: one cancelled in that
    window is run, Triton discards its response (the client sees the cancellation) and the log
    records it as OK, as for a cancel that arrives while ONNX Runtime runs.
    """
    if not cheap:
        return True
    deadline = _number(params, DEADLINE_PARAM, float)
    return deadline is not None and now >= deadline


def ort_threads(single_ms: float, configured: int) -> int:
    """ONNX Runtime intra-op threads for a model that runs one image in `single_ms`.

    The configured count (CpuTuning.ort_intra_op_threads), except 1 for a model cheaper than
    CHEAP_MODEL_MS: its MatMuls are too small to split, and waking a second thread costs more
    CPU than it saves. Measured with the INT8 student at concurrency 8 (6 interleaved rounds):
    1,917 vs 1,517 images/s, stub CPU 0.35 vs 0.53 ms per request.
    """
    return 1 if single_ms < CHEAP_MODEL_MS else max(1, configured)


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        from genline.serving import spool

        self.model_config = json.loads(args["model_config"])
        self.model_name = args["model_name"]
        self.version = int(args["model_version"])
        self.instance = args.get("model_instance_name", "0")
        version_dir = Path(args["model_repository"]) / args["model_version"]
        meta = json.loads((version_dir / SERVING_META).read_text())
        self.num_classes = int(meta["num_classes"])
        self.latent_dim = int(meta["latent_dim"])
        self.image_shape = [int(d) for d in meta["image_shape"]]
        self.test_delay_s = test_delay_s()
        params = {
            k: v.get("string_value", "") for k, v in self.model_config.get("parameters", {}).items()
        }
        def session(threads: int):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.add_session_config_entry(
                "session.intra_op.allow_spinning", params.get("ort_allow_spinning", "0") or "0"
            )
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
            self.session = ort.InferenceSession(
                str(version_dir / contract.ONNX_FP32), so, providers=["CPUExecutionProvider"]
            )
            # ORT warms up at every batch size; Triton's model_warmup (marked with the optional
            # `genline_warmup` input, never logged) then warms the request/response path.
            max_batch = int(self.model_config.get("max_batch_size", 1) or 1)
            for batch in sorted({1, min(8, max_batch), max_batch}):
                zeros = np.zeros((batch, self.latent_dim), np.float32)
                self._run(np.zeros(batch, np.int64), zeros)

        configured = int(params.get("ort_intra_op_threads", "1") or 1)
        session(configured)
        self.single_ms = single_image_ms(self._run, self.latent_dim)
        self.threads = ort_threads(self.single_ms, configured)
        if self.threads != configured:
            session(self.threads)
        # the test hook's pause is a slow model: it asks, like one
        self.cheap = self.single_ms < CHEAP_MODEL_MS and self.test_delay_s is None
        print(
            f"genline: {self.model_name} version {self.version}: {self.single_ms:.3f} ms per "
            f"single image -> {self.threads} ONNX Runtime thread(s) (configured {configured}), "
            f"cancellation asked {'past declared deadlines only' if self.cheap else 'always'}",
            flush=True,
        )
        evaluator = version_dir / contract.EVALUATOR_ONNX
        embedding = version_dir / EMBEDDING_FILE
        self.log = spool.SpoolWriter(
            os.environ.get(spool.DIR_ENV) or spool.default_dir(),
            header={
                "model": self.model_name,
                "version": self.version,
                "instance": self.instance,
                "evaluator": str(evaluator) if evaluator.is_file() else None,
                "embedding": str(embedding) if embedding.is_file() else None,
                "image_shape": self.image_shape,
                "pid": os.getpid(),
            },
            flush_s=float(params.get("predlog_flush_s", "1") or 1),
            rotate_s=float(params.get("predlog_rotate_s", "10") or 10),
        )

    def _run(self, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.session.run([IMAGE], {LABEL: labels, Z: z})[0]

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        start = time.perf_counter()
        now = time.time()
        responses = [None] * len(requests)
        records = [None] * len(requests)
        valid = []
        for i, request in enumerate(requests):
            rid = request.request_id() or f"genline-{uuid.uuid4().hex}"
            params = _params(request)
            seed = _number(params, "seed", int)
            if should_ask_cancelled(self.cheap, params, now) and is_cancelled(request):
                status, msg = _cancel_outcome(CANCELLED_QUEUED, params)
                responses[i] = _error(pb_utils, msg, "CANCELLED")
                records[i] = self._record(rid, seed, now, status, msg)
                continue
            try:
                t_label = pb_utils.get_input_tensor_by_name(request, LABEL)
                t_z = pb_utils.get_input_tensor_by_name(request, Z)
                labels, z = validate(
                    t_label.as_numpy() if t_label is not None else None,
                    t_z.as_numpy() if t_z is not None else None,
                    self.num_classes,
                    self.latent_dim,
                )
                valid.append((i, rid, seed, labels, z, params))
            except InputError as exc:
                responses[i] = _error(pb_utils, str(exc), "INVALID_ARG")
                records[i] = self._record(rid, seed, now, "INVALID_ARGUMENT", str(exc))
        if valid and self.test_delay_s is not None:
            valid = self._pause(requests, valid, responses, records, pb_utils, now)
        if valid:
            labels = np.concatenate([v[3] for v in valid])
            zs = np.concatenate([v[4] for v in valid])
            try:
                images = self._run(labels, zs)
            except Exception as exc:  # the whole batch failed inside ORT
                msg = f"generator failed: {exc}"
                for i, rid, seed, *_ in valid:
                    responses[i] = _error(pb_utils, msg, "INTERNAL")
                    records[i] = self._record(rid, seed, now, "INTERNAL", msg)
                valid = []
            latency_ms = round((time.perf_counter() - start) * 1e3, 3)
            if valid:  # summaries for the whole batch at once, sliced per request
                from genline.serving.features import encode_images, summarize

                summaries = summarize(labels, zs, images)
            offset = 0
            for i, rid, seed, lab, _, _ in valid:
                n = len(lab)
                img = images[offset : offset + n]
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(IMAGE, img)]
                )
                rec = self._record(rid, seed, now, "OK", None, latency_ms)
                rec["batch"] = n
                rec.update({k: v[offset : offset + n] for k, v in summaries.items()})
                rec["images"] = encode_images(img)
                records[i] = rec
                offset += n
        traffic = [rec for request, rec in zip(requests, records, strict=True)
                   # Triton's model_warmup (config.pbtxt) is not traffic
                   if pb_utils.get_input_tensor_by_name(request, WARMUP) is None]
        try:  # the batch's lines in one write; a record that cannot be encoded costs only itself
            self.log.write_many(traffic)
        except Exception as exc:  # logging must never fail a response; say so loudly
            print(f"genline predlog: write failed: {exc!r}", flush=True)
        return responses

    def _pause(self, requests, valid, responses, records, pb_utils, now):
        """The test-only pause: sleep in slices, dropping requests cancelled meanwhile.

        Each request waits for its own `genline_test_delay_s` (else the server's default); the
        batch pauses while any request still wanting to wait is not cancelled.

        Returns:
            The entries of `valid` still wanted after the pause (the rest have their CANCELLED
            response and record filled in).
        """
        begin = time.monotonic()

        def hold(entry) -> float:
            wanted = _number(entry[5], TEST_DELAY_PARAM, float)
            return wanted if wanted is not None and wanted >= 0 else self.test_delay_s

        ids = ",".join(entry[1] for entry in valid)
        longest = max(hold(entry) for entry in valid)
        # Tests wait for this line in the server log to know their requests are in execute().
        print(f"genline test hook: pausing {ids} for {longest:.3f} s", flush=True)
        while valid:
            left = begin + max(hold(entry) for entry in valid) - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(PAUSE_SLICE_S, left))
            still = []
            for entry in valid:
                i, rid, seed = entry[:3]
                if is_cancelled(requests[i]):
                    status, msg = _cancel_outcome(CANCELLED_PAUSED, entry[5])
                    responses[i] = _error(pb_utils, msg, "CANCELLED")
                    records[i] = self._record(rid, seed, now, status, msg)
                else:
                    still.append(entry)
            valid = still
        return valid

    def _record(self, rid, seed, now, status, error, latency_ms=None):
        return {
            "request_id": rid,
            "time": now,
            "version": self.version,
            "status": status,
            "error": error,
            "seed": seed,
            "latency_ms": latency_ms,
        }

    def finalize(self):
        log = getattr(self, "log", None)
        if log is not None:
            log.close(compact_now=True)


def _params(request) -> dict:
    """The request's parameters (a dict; {} when absent or unreadable)."""
    try:
        params = json.loads(request.parameters() or "{}")
    except (ValueError, AttributeError):
        return {}
    return params if isinstance(params, dict) else {}


def _number(params: dict, key: str, kind: type):
    """params[key] as `kind` (int or float) when it is a number, else None."""
    value = params.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return kind(value)
    return None


def _cancel_outcome(where: str, params: dict) -> tuple[str, str]:
    """(status, message) for a request Triton cancelled.

    Triton's gRPC frontend cancels a request both when the client cancels it and when its gRPC
    deadline expires, and the model cannot tell which. When the client declared its deadline
    (`genline_deadline`, epoch seconds) and the server's clock is past it, the record says
    DEADLINE_EXCEEDED; otherwise CANCELLED, which is all the server knows.
    """
    deadline = _number(params, DEADLINE_PARAM, float)
    now = time.time()
    if deadline is not None and now >= deadline:
        late_ms = (now - deadline) * 1e3
        return (
            "DEADLINE_EXCEEDED",
            f"{where}: the client's deadline passed {late_ms:.1f} ms earlier (server clock)",
        )
    return "CANCELLED", where


def _error(pb_utils, message: str, code_name: str):
    """An error response with TritonError.<code_name> (INVALID_ARG, CANCELLED, INTERNAL)."""
    code = getattr(pb_utils.TritonError, code_name, None)
    err = pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)
