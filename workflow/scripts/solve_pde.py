"""Snakemake adapter: solve one continuum PDE data set (kdv, allen_cahn, allen_cahn_2d) and write its fields."""

from mesodyn.pipeline import log_to, solve_pde_files

with log_to(snakemake.log[0]):
    solve_pde_files(
        snakemake.wildcards.dataset,
        snakemake.params.config,
        fields_path=snakemake.output[0],
        threads=snakemake.threads,
    )
