"""Snakemake adapter: the long-horizon table (mesodyn.tables.long_horizon_table), CSV and Markdown."""

from mesodyn.pipeline import log_to
from mesodyn.tables import long_horizon_table, write_long_horizon_table

with log_to(snakemake.log[0]):
    stem = snakemake.output[0].removesuffix(".csv")
    write_long_horizon_table(long_horizon_table(snakemake.input), stem)
