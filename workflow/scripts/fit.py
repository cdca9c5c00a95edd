"""Snakemake adapter: train one model on one data set and write its run folder."""

from pathlib import Path

from mesodyn.fields import read_fields
from mesodyn.pipeline import log_to, set_threads
from mesodyn.training import TrainConfig, fit

with log_to(snakemake.log[0]):
    set_threads(snakemake.threads)
    fit(
        read_fields(snakemake.input.data),
        model_config=snakemake.params.model,
        train=TrainConfig.from_dict(snakemake.params.train),
        out_dir=Path(snakemake.output.weights).parent,
        # read from the config, not params: switching progress bars on or off must not retrain a model
        progress=snakemake.config["progress"],
    )
