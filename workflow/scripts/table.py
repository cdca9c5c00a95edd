"""Snakemake adapter: the paper's table (relative RMSE at steps 1-5, ours beside the paper's)."""

from pathlib import Path

from mesodyn.pipeline import log_to, table_files

with log_to(snakemake.log[0]):
    table_files(snakemake.input, out_dir=Path(snakemake.output[0]).parent, steps=5)
