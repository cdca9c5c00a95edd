"""Snakemake adapter: the identifiability table (mesodyn.tables.identifiability_table), CSV, Markdown and its page
of the report."""

from pathlib import Path

from mesodyn._io import atomic_write
from mesodyn.pipeline import log_to
from mesodyn.tables import captioned_page, identifiability_table, write_identifiability_table

with log_to(snakemake.log[0]):
    stem = snakemake.output.csv.removesuffix(".csv")
    paths = write_identifiability_table(identifiability_table(snakemake.input), stem)
    page = captioned_page(Path(paths["md"]).read_text(encoding="utf-8"), title="What the model learned")
    atomic_write(snakemake.output.page, page.encode("utf-8"))
