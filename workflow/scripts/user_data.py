"""Snakemake adapter: check a data set of the user's own against the user contract and write it as the workflow's
fields file (mesodyn.pipeline.user_data_files)."""

from mesodyn.pipeline import user_data_files, workflow_job

with workflow_job(snakemake):
    user_data_files(
        snakemake.wildcards.dataset,
        snakemake.config,
        fields_path=snakemake.output.fields,
    )
