"""Snakemake adapter: draw and simulate one out-of-distribution variant of a data set (mesodyn.ood)."""

from mesodyn.ood import ood_data_files
from mesodyn.pipeline import workflow_job

with workflow_job(snakemake):
    ood_data_files(snakemake.wildcards.dataset, snakemake.wildcards.variant, snakemake.config,
                   fields_path=snakemake.output[0], threads=snakemake.threads)
