"""mesodyn: from microscopic chains and continuum PDEs to learned Onsager dynamics, figures and tables.

Run `snakemake --cores all` (default config) or `snakemake --cores 2 --configfile config/ci.yaml` (tiny).
"""

from snakemake.utils import min_version

min_version("9.0")


# The default config file comes from profiles/default (`configfile: config/config.yaml`), so that a config given
# with --configfile replaces it instead of being merged into it. Keys left out take the schema's defaults.


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pde.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        data_targets(),
        model_targets(),
        metric_targets(),
        rules.table.output,
        figure_targets(),
