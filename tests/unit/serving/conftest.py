import sys
from pathlib import Path

# onnx_fixture.py lives next to this file; --import-mode=importlib does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
