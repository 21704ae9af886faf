"""Writes the API reference pages (docs/api/) from the registry and ``__all__`` lists.

Run by ``docs/conf.py`` at every build, so that a loss registered or exported
by anyone gets its entry without editing a page: one page per registry family
(every registered loss of that family), one page for the other public
functions of ``jaxloss.__all__`` (box and distance utilities, ...), and pages
for ``compose``, ``weighting``, ``aggregate`` and ``registry`` (each module's
``__all__``). The generated folder is not committed.
"""

from __future__ import annotations

import inspect
import pathlib
import shutil
from types import ModuleType

# modules with their own page, in order; their public names are documented there
MODULE_PAGES = ("compose", "weighting", "aggregate", "registry")
TITLES = {
    "regression": "Regression losses",
    "classification": "Classification losses",
    "segmentation": "Segmentation losses",
    "detection": "Detection losses",
    "metric": "Metric learning and self-supervision",
    "image": "Image, generative and reconstruction losses",
    "keypoint": "Keypoint and pose losses",
    "geometry": "Geometry losses: depth, flow, registration",
    "custom": "User-registered losses",
}


def _heading(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _directive(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    return "autofunction"


def _public_module_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if not inspect.ismodule(getattr(module, n, None))]


def documented_names() -> dict[str, str]:
    """Every public name -> the fully qualified name its API entry has."""
    import jaxloss
    from jaxloss import registry

    entries: dict[str, str] = {}
    for module_name in MODULE_PAGES:
        module = getattr(jaxloss, module_name)
        for name in _public_module_names(module):
            entries[f"{module_name}.{name}"] = f"jaxloss.{module_name}.{name}"
    for name in jaxloss.__all__:
        obj = getattr(jaxloss, name)
        if inspect.ismodule(obj):
            entries[name] = f"jaxloss.{name}"
            continue
        owner = next((m for m in MODULE_PAGES
                      if getattr(getattr(jaxloss, m), name, None) is obj), None)
        entries[name] = f"jaxloss.{owner}.{name}" if owner else f"jaxloss.{name}"
    for name in registry.names():
        if name not in entries:
            entries[name] = _qualified_loss(name)
    return entries


def _qualified_loss(name: str) -> str:
    import jaxloss
    from jaxloss import registry

    if hasattr(jaxloss, name):
        return f"jaxloss.{name}"
    family = registry.family_of(name)
    if hasattr(getattr(jaxloss, family, None), name):
        return f"jaxloss.{family}.{name}"
    fn = registry.get(name)
    return f"{fn.__module__}.{getattr(fn, '__qualname__', name)}"


def _summary(name: str) -> str:
    """The first line of a loss's docstring, without markup that could be left unbalanced."""
    from jaxloss import registry

    doc = inspect.getdoc(registry.get(name)) or ""
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    if line.count("``") % 2 or line.count("`") % 2 or line.startswith(".."):
        line = line.replace("`", "").lstrip(". ")
    return "``".join(_escape_outside(part, "`") if i % 2 == 0 else part
                     for i, part in enumerate(line.split("``"))) or "(no docstring)"


def _escape_outside(text: str, quote: str) -> str:
    """``|`` and ``*`` escaped outside ``quote``-delimited spans (the even parts)."""
    parts = text.split(quote)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|").replace("*", "\\*")
    return quote.join(parts)


def _family_page(family: str, names: list[str]) -> str:
    import jaxloss

    lines = [_heading(TITLES.get(family, f"{family.capitalize()} losses"))]
    module = getattr(jaxloss, family, None)
    if inspect.ismodule(module):
        lines.append(f".. automodule:: jaxloss.{family}\n   :no-members:\n")
    lines.append(f"Losses registered in the ``{family}`` family "
                 f"(``jaxloss.names(family=\"{family}\")``): {len(names)}.\n")
    lines.append(".. list-table::\n   :header-rows: 1\n   :widths: 35 65\n   :align: left\n")
    lines.append("   * - loss\n     - summary")
    for name in names:
        lines.append(f"   * - :func:`{_qualified_loss(name)}`\n     - {_summary(name)}")
    lines.append("")
    for name in names:
        lines.append(f".. autofunction:: {_qualified_loss(name)}\n")
    return "\n".join(lines)


def _module_page(module_name: str) -> str:
    import jaxloss

    module = getattr(jaxloss, module_name)
    title = {"compose": "Composition: terms and objectives",
             "weighting": "Loss-level multi-task weighting",
             "aggregate": "Gradient-level multi-task aggregators",
             "registry": "The registry"}.get(module_name, module_name)
    lines = [_heading(title), f".. automodule:: jaxloss.{module_name}\n   :no-members:\n"]
    reexported = [n for n in jaxloss.__all__
                  if not inspect.ismodule(getattr(jaxloss, n))
                  and getattr(module, n, None) is getattr(jaxloss, n)]
    if reexported:
        lines.append("Also available at the top level: "
                     + ", ".join(f"``jaxloss.{n}``" for n in reexported) + ".\n")
    for name in _public_module_names(module):
        obj = getattr(module, name)
        if callable(obj) or inspect.isclass(obj):
            lines.append(f".. {_directive(obj)}:: jaxloss.{module_name}.{name}\n")
        else:
            lines.append(f".. autodata:: jaxloss.{module_name}.{name}\n   :annotation:\n")
    return "\n".join(lines)


def _other_page(names: list[str], modules: list[str]) -> str:
    lines = [_heading("Utilities"),
             "Public functions of ``jaxloss`` that are not losses (they are not in the "
             "registry): box utilities, distance transforms, feature statistics.\n"]
    for name in modules:
        lines.append(f".. automodule:: jaxloss.{name}\n   :no-members:\n")
    for name in names:
        lines.append(f".. autofunction:: jaxloss.{name}\n")
    return "\n".join(lines)


def write(outdir: pathlib.Path) -> list[str]:
    """Writes the pages into ``outdir`` (emptied first); returns their document names."""
    import jaxloss
    from jaxloss import registry

    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    pages: list[str] = []
    for family in registry.FAMILIES:
        names = registry.names(family=family)
        if family == "custom":
            names = [n for n in names if n in registry._BUILTIN]
        if not names:
            continue
        (outdir / f"{family}.rst").write_text(_family_page(family, names))
        pages.append(family)
    losses = set(registry.names())
    module_owned = {n for m in MODULE_PAGES for n in _public_module_names(getattr(jaxloss, m))}
    other, modules = [], []
    for name in jaxloss.__all__:
        obj = getattr(jaxloss, name)
        if inspect.ismodule(obj):
            if name not in MODULE_PAGES and name not in pages:
                modules.append(name)
        elif name not in losses and not (name in module_owned and any(
                getattr(getattr(jaxloss, m), name, None) is obj for m in MODULE_PAGES)):
            other.append(name)
    if other or modules:
        (outdir / "utilities.rst").write_text(_other_page(other, modules))
        pages.append("utilities")
    for module_name in MODULE_PAGES:
        (outdir / f"{module_name}.rst").write_text(_module_page(module_name))
        pages.append(module_name)
    index = [_heading("API reference"),
             "Generated from the docstrings at every build: one page per family of the "
             "registry (``jaxloss.registry.FAMILIES``), the utilities, and the "
             "composition, weighting, aggregation and registry modules. Every loss "
             "follows the calling convention of :doc:`../conventions`.\n",
             ".. toctree::\n   :maxdepth: 1\n"]
    index += [f"   {page}" for page in pages]
    (outdir / "index.rst").write_text("\n".join(index) + "\n")
    return pages
