"""Snakemake adapter: train one model on one data set and write its run folder."""

from pathlib import Path

from mesodyn.pipeline import fit_files, workflow_job

with workflow_job(snakemake):
    fit_files(
        snakemake.input.data,
        model=snakemake.params.model,
        train=snakemake.params.train,
        out_dir=Path(snakemake.output.weights).parent,
        threads=snakemake.threads,
        # read from the config, not params: switching progress bars on or off must not retrain a model
        progress=snakemake.config["progress"],
    )
