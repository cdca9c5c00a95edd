"""Snakemake adapter: solve one continuum PDE data set (kdv, allen_cahn, allen_cahn_2d) and write its fields."""

from mesodyn.pipeline import log_to, solve_pde_files

with log_to(snakemake.log[0]):
    solve_pde_files(
        snakemake.wildcards.dataset,
        # progress from the config, not params: switching progress bars on or off must not rerun a simulation
        {**snakemake.params.config, "progress": snakemake.config["progress"]},
        fields_path=snakemake.output[0],
        threads=snakemake.threads,
    )
