"""mesodyn: from microscopic chains and continuum PDEs to learned Onsager dynamics, figures and tables.

Run `snakemake --cores all` (default config) or `snakemake --cores 2 --configfile config/ci.yaml` (tiny).
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pde.smk"


rule all:
    default_target: True
    input:
        data_targets(),
