"""Snakemake adapter: solve one continuum PDE data set (kdv, allen_cahn, allen_cahn_2d) and write its fields."""

import logging

from mesodyn.continuum import make_dataset
from mesodyn.fields import write_fields
from mesodyn.pipeline import log_to

logger = logging.getLogger("mesodyn")

with log_to(snakemake.log[0]):
    name = snakemake.wildcards.dataset
    config = snakemake.params.config
    params = config["data"][name]
    logger.info("solving %s with %d thread(s): %s", name, snakemake.threads, params)
    fields = make_dataset(name, params=params, seed=config["seed"], progress=config["progress"],
                          workers=snakemake.threads)
    logger.info("accepted %d of %d trials", fields.sizes["sample"], fields.attrs["n_trials"])
    write_fields(fields, snakemake.output[0], config=config)
    logger.info("wrote %s", snakemake.output[0])
