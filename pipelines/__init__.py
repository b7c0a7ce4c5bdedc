"""Kubeflow Pipelines of genline: wiring only; compiled IR YAML lives in pipelines/compiled/."""
