"""Writes the example pages (docs/examples/) from ``examples/*.py`` and their figures.

Run by ``docs/conf.py`` at every build. Each script gets a page: its module
docstring (as reStructuredText when it parses cleanly, as plain text
otherwise) and the figures committed under ``docs/_static/examples/`` whose
names start with the script's name (the PNGs the script saves, from a full run,
reduced: a palette PNG, or a JPEG for photographs; regenerate them with the
script and copy them there).
"""

from __future__ import annotations

import ast
import pathlib
import shutil

from docutils import nodes
from docutils.core import publish_doctree


def _parses_cleanly(text: str) -> bool:
    try:
        tree = publish_doctree(text, settings_overrides={
            "report_level": 5, "halt_level": 5, "warning_stream": False})
    except Exception:
        return False
    return not any(m["level"] >= 2 for m in tree.findall(nodes.system_message))


def _page(script: pathlib.Path, figures: list[pathlib.Path]) -> str:
    doc = ast.get_docstring(ast.parse(script.read_text())) or script.stem
    title, _, body = doc.partition("\n")
    heading = f"{script.stem}.py: {title.strip().rstrip('.')}"
    lines = [heading, "=" * len(heading), "",
             f"``python examples/{script.name}`` (``--smoke`` for a short run; "
             "``--help`` for the options).", ""]
    body = body.strip()
    if body and _parses_cleanly(body):
        lines += [body, ""]
    elif body:
        lines += [".. code-block:: text", ""] + [f"   {line}" for line in body.splitlines()] + [""]
    if figures:
        lines += ["Figures", "-------", ""]
        for figure in figures:
            lines += [f".. image:: /_static/examples/{figure.name}",
                      f"   :alt: {figure.stem}", ""]
    return "\n".join(lines) + "\n"


def write(outdir: pathlib.Path, examples: pathlib.Path, static: pathlib.Path) -> list[str]:
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    pages = []
    for script in sorted(examples.glob("*.py")):
        if script.stem.startswith("_"):
            continue
        figures = sorted([*static.glob(f"{script.stem}_*.png"),
                          *static.glob(f"{script.stem}_*.jpg")])
        (outdir / f"{script.stem}.rst").write_text(_page(script, figures))
        pages.append(script.stem)
    index = ["Examples", "========", "",
             "Runnable Flax NNX training scripts in ``examples/``, on shipped or generated "
             "data (no downloads). Each prints a table that says what its numbers mean and "
             "which setting wins, and saves its figures under ``examples/out/``; the figures "
             "below come from those runs.", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {p}" for p in pages]
    (outdir / "index.rst").write_text("\n".join(index) + "\n")
    return pages
