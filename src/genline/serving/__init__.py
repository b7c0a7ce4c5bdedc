"""Serving: a real Triton Inference Server in front of the generator.

Modules (one concept each; nothing happens at import time):

- `config`      -- the Triton model configs (CPU python backend, GPU onnxruntime + TensorRT),
                   rendered from one frozen dataclass and checked against the ONNX graph.
- `server`      -- find, start, stop and query the `tritonserver` binary shipped in nvidia-pytriton.
- `repository`  -- the versioned model repository: name checks, staging, quarantine.
- `registry`    -- which version serves, and the lineage of every version ever published.
- `publish`     -- publish with sha256 check, atomic rename, load, canary; rollback; quarantine.
- `profile`     -- the reference output profile of a version on a fixed probe set.
- `predlog`     -- durable prediction logging: spool -> hourly Parquet, deduplicated by request id.
- `backend_model` -- the python-backend model Triton runs (copied into every published version).
"""
