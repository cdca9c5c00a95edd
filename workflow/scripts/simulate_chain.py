"""Snakemake adapter: simulate one chain data set and write its fields and micro files."""

from mesodyn.pipeline import log_to, simulate_chain_files

with log_to(snakemake.log[0]):
    simulate_chain_files(
        snakemake.wildcards.dataset,
        # progress from the config, not params: switching progress bars on or off must not rerun a simulation
        {**snakemake.params.config, "progress": snakemake.config["progress"]},
        fields_path=snakemake.output.fields,
        micro_path=snakemake.output.micro,
        threads=snakemake.threads,
    )
