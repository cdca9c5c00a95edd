"""Write the README's gallery: small copies of a few figures of a real default run.

Run from the repository root after ``snakemake --cores all`` (default config):
``python docs/figures/make_gallery.py [RESULTS_DIR]``. Each chosen ``results/figures/{figure}_{dataset}.png`` is
scaled to ``WIDTH`` pixels and stored as an 8-bit palette PNG in ``docs/figures/``, with the run's commit in the
PNG text chunk (read from the run's table), so the gallery stays small (tens of kB per figure) and says which run
drew it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, PngImagePlugin

HERE = Path(__file__).resolve().parent
WIDTH = 900
GALLERY = (
    ("rel_rmse", "kdv"),                 # the paper's figure 1
    ("energy_vs_truth", "allen_cahn"),   # figure 3
    ("step_size_sweep", "allen_cahn"),   # figure 4, Euler beside the stabilized step
    ("energy_change_vs_dt", "fput"),     # figure 6
    ("energy_order", "allen_cahn"),      # figure 7
)


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else Path("results")
    stamp = (results / "tables" / "rel_rmse_first5.md").read_text(encoding="utf-8").splitlines()[0]
    stamp = stamp.removeprefix("<!-- ").removesuffix(" -->")  # "mesodyn VERSION, commit HASH"
    for figure, dataset in GALLERY:
        source = results / "figures" / f"{figure}_{dataset}.png"
        with Image.open(source) as image:
            height = round(image.height * WIDTH / image.width)
            small = image.convert("RGB").resize((WIDTH, height), Image.LANCZOS).quantize(colors=256)
        info = PngImagePlugin.PngInfo()
        info.add_text("Source", f"{source.name} of a default run, {stamp}")
        out = HERE / source.name
        small.save(out, optimize=True, pnginfo=info)
        print(f"{out.relative_to(HERE.parent.parent)}: {out.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
