"""Names every part of genline agrees on: tensor names, model-directory files, the served model.

Defined once here; export code, Triton configs, clients, components and tests import them.
"""

from __future__ import annotations

# --- the generator graph (ONNX and Triton) ------------------------------------------------------
INPUT_LABEL = "label"  # INT64 [B]           class index in 0..num_classes-1
INPUT_Z = "z"  # FP32 [B, latent_dim]        standard-normal noise
OUTPUT_IMAGE = "image"  # FP32 [B, C, H, W]  pixel values in [0, 1]

# --- the evaluator graph (used for metrics, prediction logging and drift features) -------------
EVAL_INPUT = "image"  # FP32 [B, C, H, W]
EVAL_LOGITS = "logits"  # FP32 [B, num_classes]
EVAL_FEATURES = "features"  # FP32 [B, feature_dim] penultimate layer

ONNX_OPSET = 17

# --- the served model ----------------------------------------------------------------------------
MODEL_NAME = "genline_generator"
# Optional BOOL [1] input that only Triton's model_warmup sends (config.pbtxt): the backend serves
# it but never logs it (a warmup request is otherwise indistinguishable from a client's).
WARMUP_INPUT = "genline_warmup"
# What publish writes into every version directory <repo>/<model>/<N>/ beside the ONNX:
SERVING_META = "serving.json"  # num_classes, latent_dim, image_shape, classes, version, lineage
BACKEND_MODEL = "model.py"  # the python-backend model (a copy of genline.serving.backend_model)
# Request parameter the genline client sends: its per-attempt deadline as epoch seconds, so the
# backend can log an expired deadline as DEADLINE_EXCEEDED rather than a bare CANCELLED.
DEADLINE_PARAM = "genline_deadline"

# --- files in a model directory (`genline train --out DIR`) --------------------------------------
CHECKPOINT = "checkpoint.pt"  # generator weights + config + dataset fingerprint + metrics
METRICS = "metrics.json"  # fd, fd_real, fd_ratio, conditional_accuracy, evaluator_accuracy, ...
GATE = "gate.json"  # {"passed": bool, "reasons": [str, ...], ...}
ONNX_FP32 = "model.onnx"  # the portable source of truth for serving
ONNX_INT8 = "model.int8.onnx"  # dynamic INT8 variant of model.onnx, present only when adopted
STUDENT_CHECKPOINT = "student.pt"  # the distilled few-step generator (genline.distill)
DISTILL_REPORT = "distill.json"  # student config, timings, teacher/student metrics, its gate
ONNX_STUDENT = "model.student.onnx"  # the student's graph, present when it was exported
ONNX_STUDENT_INT8 = "model.student.int8.onnx"  # its dynamic INT8 variant, when adopted
# the graphs that serve the distilled student (publish checks distill.json for either)
STUDENT_VARIANTS = (ONNX_STUDENT, ONNX_STUDENT_INT8)
EVALUATOR_CHECKPOINT = "evaluator.pt"
EVALUATOR_ONNX = "evaluator.onnx"
EMBEDDING = "embedding.npz"  # PCA of the evaluator's EVAL_FEATURES, fitted on the training split
EXPORT_REPORT = "export.json"  # parity, int8 decision, sha256 of every exported file, shapes
SAMPLES_PNG = "samples.png"  # one row per label
LOSS_PNG = "loss.png"
DATASET_INFO = "dataset.json"  # fingerprint, classes, counts of the data the model was trained on

# --- lineage stamps: every JSON file of one model directory carries the same two values --------
# (written by genline.workflow; publish refuses a directory whose files disagree)
RUN_ID_KEY = "run_id"  # one id per `genline train` run (uuid4 hex)
CHECKPOINT_SHA256_KEY = "checkpoint_sha256"  # sha256 of checkpoint.pt of that run
STAMPED_FILES = (METRICS, GATE, EXPORT_REPORT, DATASET_INFO)
