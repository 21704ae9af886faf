"""API rules: keyword-only defaults, runnable examples, references, README catalogue."""

from __future__ import annotations

import importlib.util
import inspect
import pathlib
import re

import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parent.parent
# public, but not in __all__: they need Flax and are imported on first access
LAZY = ["VGG16Features", "vgg16_features", "LPIPSNetwork", "lpips_network"]
HAS_FLAX = importlib.util.find_spec("flax") is not None
PUBLIC = sorted(
    [name for name in jaxloss.__all__ if callable(getattr(jaxloss, name)) and
     not inspect.ismodule(getattr(jaxloss, name))] + (LAZY if HAS_FLAX else [])
)


def test_all_names_exist():
    for name in jaxloss.__all__:
        assert hasattr(jaxloss, name), name
    assert set(LAZY) <= set(dir(jaxloss)) and not set(LAZY) & set(jaxloss.__all__)
    if HAS_FLAX:
        for name in LAZY:
            assert hasattr(jaxloss, name), name


def test_every_builtin_loss_is_public():
    missing = [n for n in jaxloss.registry._BUILTIN if n not in jaxloss.__all__]
    assert not missing, f"registered but not exported: {missing}"


@pytest.mark.parametrize("name", PUBLIC)
def test_defaults_are_keyword_only(name):
    signature = inspect.signature(getattr(jaxloss, name))
    # ``register(fn=None, *, ...)``: a decorator takes the function positionally.
    positional_defaults = [
        p.name for p in signature.parameters.values()
        if p.default is not inspect.Parameter.empty and p.name != "fn"
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    assert not positional_defaults, f"{name}: {positional_defaults} must be keyword-only"


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_has_example_and_references(name):
    doc = inspect.getdoc(getattr(jaxloss, name)) or ""
    assert ">>>" in doc, f"{name} has no runnable example"
    assert "References" in doc, f"{name} has no References section"


@pytest.mark.parametrize("name", sorted(jaxloss.registry._BUILTIN))
def test_losses_follow_calling_convention(name):
    params = inspect.signature(jaxloss.get(name)).parameters
    for keyword in ("where", "weights", "reduction"):
        assert keyword in params, f"{name} lacks {keyword}="
        assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["reduction"].default == "mean"
    annotations = [p.annotation for p in params.values()]
    assert all(a is not inspect.Parameter.empty for a in annotations), f"{name}: unannotated"


def _readme_catalogue() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Catalogue", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([a-z0-9_]+)`", first_cell))
    return names


def test_readme_catalogue_matches_registry():
    catalogue = _readme_catalogue()
    registered = set(jaxloss.registry._BUILTIN)
    assert catalogue == registered, (
        f"README lists but not registered: {sorted(catalogue - registered)}; "
        f"registered but not in README: {sorted(registered - catalogue)}"
    )


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- commands -->", 1)[1].split("<!-- /commands -->", 1)[0]
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith(("#", "```"))]


def test_ci_runs_the_readme_test_command():
    main_job, test_command = _readme_commands()
    assert "examples/quickstart.py" in main_job
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci, ".ci/run must run the README's test command verbatim"
