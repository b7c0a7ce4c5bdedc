"""Serving: a real Triton Inference Server in front of the generator.

Modules (one concept each; nothing happens at import time):

- `config`      -- the Triton model configs (CPU python backend, GPU onnxruntime + TensorRT),
                   rendered from one frozen dataclass and checked against the ONNX graph.
- `install`     -- where the `tritonserver` binary shipped in nvidia-pytriton and its stub are.
- `admin`       -- the admin token that guards the repository-control API.
- `server`      -- start, stop and query the `tritonserver` process.
- `repository`  -- the versioned model repository: name checks, staging, quarantine.
- `registry`    -- which version serves, and the lineage of every version ever published.
- `publish`     -- publish a gated model (idempotent, crash-safe), over `staging` (copy, sha256,
                   config check), `canary` (canary and probe) and `reconcile` (interrupted
                   publishes); `rollback` serves the previous version again; `target` holds what
                   both share (Target, PublishError, the lock). Server calls go through
                   `genline.control.ControlClient`.
- `profile`     -- the reference output profile of a version on a fixed probe set.
- `features`    -- the per-sample output features, the prediction log's one column list, the
                   spool's image encoding and the evaluator scorer.
- `spool`       -- the prediction-log writer inside the backend stub (one JSON line per response).
- `store`       -- compaction of the spool into hourly Parquet, and reading a time window.
- `backend_model` -- the python-backend model Triton runs (copied into every published version).
"""
