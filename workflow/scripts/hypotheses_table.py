"""Snakemake adapter: the hypotheses table (mesodyn.hypotheses.hypothesis_table), CSV, Markdown and its report page."""

from pathlib import Path

from mesodyn._io import atomic_write
from mesodyn.hypotheses import hypothesis_table, write_hypothesis_table
from mesodyn.pipeline import log_to
from mesodyn.tables import captioned_page

with log_to(snakemake.log[0]):
    tolerance = snakemake.params.tolerance
    table = hypothesis_table(snakemake.input.metrics, step=snakemake.params.step, tolerance=tolerance)
    paths = write_hypothesis_table(table, snakemake.output.csv.removesuffix(".csv"), tolerance=tolerance)
    page = captioned_page(Path(paths["md"]).read_text(encoding="utf-8"), title="Hypotheses compared")
    atomic_write(snakemake.output.page, page.encode("utf-8"))
