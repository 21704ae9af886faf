"""Packaging: the public API needs no optional dependency; metadata matches what is imported."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap

import pytest

import jaxloss

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Flax made unimportable (a None entry in sys.modules makes `import flax` raise ImportError),
# as in an environment where only the runtime dependencies are installed.
_WITHOUT_FLAX = textwrap.dedent("""
    import sys
    for name in [m for m in sys.modules if m == "flax" or m.startswith("flax.")]:
        del sys.modules[name]
    sys.modules["flax"] = None

    namespace = {}
    exec("from jaxloss import *", namespace)
    import jaxloss

    missing = [n for n in jaxloss.__all__ if not hasattr(jaxloss, n) or n not in namespace]
    assert not missing, missing
    assert "vgg16_features" not in jaxloss.__all__ and "VGG16Features" not in jaxloss.__all__
    assert {"vgg16_features", "VGG16Features"} <= set(dir(jaxloss))
    assert not any(m == "flax" or m.startswith("flax.") for m in sys.modules if sys.modules[m])
    assert not hasattr(jaxloss, "vgg16_features")  # False, not an exception, without Flax
    assert not hasattr(jaxloss, "lpips_network") and "lpips_network" in dir(jaxloss)
    assert callable(jaxloss.lpips_loss)  # the loss itself needs no Flax
    try:
        jaxloss.vgg16_features
    except AttributeError as error:
        assert isinstance(error.__cause__, ImportError), error.__cause__
        assert "pip install 'jaxloss[flax]'" in str(error), error
    else:
        raise AssertionError("jaxloss.vgg16_features imported without Flax")
    print(len(jaxloss.__all__))
""")


def test_star_import_and_every_public_name_work_without_flax():
    result = subprocess.run([sys.executable, "-c", _WITHOUT_FLAX], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[-1]) == len(jaxloss.__all__)


def test_lazy_vgg_names_are_listed_and_load_with_flax():
    assert {"vgg16_features", "VGG16Features"} <= set(dir(jaxloss))
    assert not {"vgg16_features", "VGG16Features"} & set(jaxloss.__all__)
    from jaxloss.image import vgg

    assert jaxloss.vgg16_features is vgg.vgg16_features
    assert jaxloss.VGG16Features is vgg.VGG16Features


def test_lazy_lpips_names_load_with_flax():
    assert not {"lpips_network", "LPIPSNetwork"} & set(jaxloss.__all__)
    from jaxloss.image import lpips_net

    assert jaxloss.lpips_network is lpips_net.lpips_network
    assert jaxloss.LPIPSNetwork is lpips_net.LPIPSNetwork


def test_all_is_a_literal_list_of_unique_names():
    for path in ["jaxloss/__init__.py", "jaxloss/aggregate/__init__.py",
                 "jaxloss/weighting/__init__.py", "jaxloss/classification/__init__.py",
                 "jaxloss/metric/__init__.py", "jaxloss/image/__init__.py",
                 "jaxloss/keypoint/__init__.py"]:
        tree = ast.parse((ROOT / path).read_text())
        values = [node.value for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
                  and getattr(node.targets[0] if isinstance(node, ast.Assign) else node.target,
                              "id", None) == "__all__"]
        assert len(values) == 1, path
        names = ast.literal_eval(values[0])  # raises for a computed __all__
        assert len(names) == len(set(names)), path


def _third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in jaxloss/ (except the optional Flax modules)."""
    found: set[str] = set()
    for path in (ROOT / "jaxloss").rglob("*.py"):
        if path.name in ("vgg.py", "lpips_net.py"):  # the optional Flax modules
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"jaxloss"}


def test_runtime_dependencies_are_the_imported_ones():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {dep.split(">")[0].split("=")[0].split("<")[0].strip()
                for dep in project["dependencies"]}
    imported = _third_party_imports()
    # jaxlib is imported through jax; every other runtime dependency must be imported
    assert declared - {"jaxlib"} == imported, (declared, imported)
    extras = project["optional-dependencies"]
    assert any(dep.startswith("flax") for dep in extras["flax"])
    assert any(dep.startswith("chex") for dep in extras["test"])
    assert any(dep.startswith("mypy") for dep in extras["test"])
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "## Unreleased" in (ROOT / "CHANGELOG.md").read_text()
