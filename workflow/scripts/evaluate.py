"""Snakemake adapter: evaluate one fitted model on both evaluation sets and write its metrics file."""

from pathlib import Path

from mesodyn.pipeline import evaluate_run_files, workflow_job

with workflow_job(snakemake):
    evaluate_run_files(
        Path(snakemake.input.weights).parent,
        snakemake.input.data,
        snakemake.output[0],
        label=snakemake.wildcards.model,
        dataset=snakemake.wildcards.dataset,
        batch_size=snakemake.params.batch_size,
        threads=snakemake.threads,
    )
