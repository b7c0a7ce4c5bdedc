"""Kubeflow Pipelines v2 components of genline: thin adapters over one core function each."""
