"""Snakemake adapter: the out-of-distribution table (mesodyn.ood.ood_table), CSV and Markdown."""

from mesodyn.ood import ood_table, write_ood_table
from mesodyn.pipeline import log_to

with log_to(snakemake.log[0]):
    stem = snakemake.output[0].removesuffix(".csv")
    write_ood_table(ood_table(snakemake.input.ood, snakemake.input.metrics), stem)
