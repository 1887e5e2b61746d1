"""vggheads: synthetic multi-person head data with 3DMM labels, a one-stage 3D head detector,
and evaluation on the field's benchmarks, as a Snakemake + DVC workflow."""

__version__ = "0.1.0"
