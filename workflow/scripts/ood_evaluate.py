"""Snakemake adapter: roll one fitted model out on every out-of-distribution variant of its data set."""

from pathlib import Path

from mesodyn.ood import evaluate_ood_files
from mesodyn.pipeline import set_threads, workflow_job

with workflow_job(snakemake):
    set_threads(snakemake.threads)
    evaluate_ood_files(
        Path(snakemake.input.weights).parent,
        dict(zip(snakemake.params.variants, snakemake.input.data)),
        snakemake.output[0],
        label=snakemake.wildcards.model,
        dataset=snakemake.wildcards.dataset,
        batch_size=snakemake.params.batch_size,
    )
