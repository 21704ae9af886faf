"""Static typing: a type checker sees the real signature of every public function.

mypy runs once on a generated snippet that ``reveal_type``s every public callable of
``jaxloss.__all__`` (explicit re-exports, ``--no-implicit-reexport``) and calls one loss with
a PyTorch keyword, which must be a type error. A decorator without annotations (or a star
import from a module whose ``__all__`` is computed) turns a loss into ``Any``, or into
``def (*Any, **Any) -> Any`` behind ``registry._builtin``'s ParamSpec; both fail here.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

import jaxloss

pytest.importorskip("mypy")

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC = sorted(
    name for name in jaxloss.__all__
    if callable(getattr(jaxloss, name)) and not inspect.ismodule(getattr(jaxloss, name))
)
# needs Flax: typed through a TYPE_CHECKING import
LAZY = ["VGG16Features", "vgg16_features", "LPIPSNetwork", "lpips_network"]

# Public losses a type checker may see as Any: none (the IoU losses' untyped ``_doc``
# decorator is gone). A name added here needs a written reason.
KNOWN_UNTYPED: set[str] = set()

_REVEALED = re.compile(r'^(?P<file>[^:]+):(?P<line>\d+): note: Revealed type is "(?P<type>.*)"$')


def _untyped(revealed: str) -> bool:
    # the function itself erased (its arguments may still be callables typed (*Any, **Any))
    return revealed == "Any" or revealed.startswith("def (*Any, **Any)")


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("typing")
    names = PUBLIC + LAZY
    lines = ["import jax.numpy as jnp", "import jaxloss", ""]
    lines += [f"reveal_type(jaxloss.{name})" for name in names]
    bad_call = "jaxloss.mse_loss(jnp.zeros(3), jnp.zeros(3), weight=1.0)"
    lines += [bad_call]
    snippet = tmp / "snippet.py"
    snippet.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # this checkout, not an installed copy
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp / "cache"),
         "--follow-imports=silent", "--no-implicit-reexport", "--no-error-summary",
         "--show-error-codes", str(snippet)],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=300, check=False,
    )
    revealed, errors = {}, []
    offset = 4  # snippet line of the first reveal_type
    for line in result.stdout.splitlines():
        match = _REVEALED.match(line)
        if match:
            revealed[names[int(match["line"]) - offset]] = match["type"]
        elif ": error:" in line:
            errors.append(line)
    return revealed, errors, len(lines), result


def test_every_public_callable_has_a_real_signature(mypy_report):
    revealed, _, _, result = mypy_report
    assert set(revealed) == set(PUBLIC + LAZY), result.stdout + result.stderr
    untyped = sorted(n for n, t in revealed.items() if _untyped(t))
    assert set(untyped) <= KNOWN_UNTYPED, {n: revealed[n] for n in untyped}
    losses = [n for n in PUBLIC if n in jaxloss.registry._BUILTIN and n not in KNOWN_UNTYPED]
    for name in losses:  # a loss is a function returning an Array
        assert revealed[name].startswith("def ("), (name, revealed[name])
        assert revealed[name].endswith("-> jax._src.basearray.Array"), (name, revealed[name])


def test_a_pytorch_keyword_is_a_type_error(mypy_report):
    _, errors, n_lines, result = mypy_report
    # the only error is the deliberate call on the snippet's last line
    assert len(errors) == 1, result.stdout + result.stderr
    assert f":{n_lines}: error: Unexpected keyword argument \"weight\"" in errors[0], errors


def test_the_package_type_checks(tmp_path):
    # the whole package under pyproject.toml's [tool.mypy] (run from the checkout's root)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "--show-error-codes", "jaxloss"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
