"""genline: a production line for generative models.

The core package. It imports neither kfp nor dagster: components, pipelines, the Dagster code
location and the CLI are thin adapters over the functions defined here.
"""

__version__ = "0.1.0"
