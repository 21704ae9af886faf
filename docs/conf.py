"""Sphinx configuration of the jaxloss documentation site.

Build: ``python -m sphinx docs docs/_build/html`` (add ``-W`` to turn warnings
into errors, as the tests do). The API pages (``docs/api/``) and the gallery
(``docs/gallery/``) are generated at every build from the registry, so new
losses appear without editing a page.
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import apigen  # noqa: E402
import examplesgen  # noqa: E402
import gallery  # noqa: E402

import jaxloss  # noqa: E402

project = "jaxloss"
author = "the jaxloss authors"
copyright = "the jaxloss authors, Apache-2.0"
release = jaxloss.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Layout", "notes_style"), ("Conventions", "notes_style")]
autodoc_typehints = "signature"
autodoc_type_aliases = {"ArrayLike": "ArrayLike", "DTypeLike": "DTypeLike"}
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
add_module_names = False
suppress_warnings = ["ref.python"]  # a name documented twice (an alias) is not an error
templates_path: list[str] = []
exclude_patterns = ["_build", "screenshots", "_gallery_cache", "README.md"]
html_theme = "furo"
html_title = f"jaxloss {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}

# generated pages: the API reference, the gallery and the examples
apigen.write(HERE / "api")
gallery.build(HERE / "gallery", caches=[gallery.COMMITTED_CACHE, HERE / "_build" / "gallery-cache"],
              write_cache=HERE / "_build" / "gallery-cache")
examplesgen.write(HERE / "examples", HERE.parent / "examples", HERE / "_static" / "examples")
