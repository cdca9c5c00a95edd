"""Snakemake adapter: one figure for every data set it is drawn for (PDF, PNG and its numbers), from its files
(mesodyn.plotting.make_figure)."""

from mesodyn.pipeline import workflow_job
from mesodyn.plotting import figure_paths, make_figure

with workflow_job(snakemake):
    figure = snakemake.params.figure
    for dataset, inputs in snakemake.params.inputs.items():
        paths = figure_paths(figure, dataset)
        make_figure(
            figure,
            dataset,
            inputs,
            pdf=paths["pdf"],
            png=paths["png"],
            numbers=paths["json"],
            style_path=snakemake.input.style,
            epsilon=snakemake.params.epsilon[dataset],
        )
        print(f"{paths['png']}: drawn", flush=True)
