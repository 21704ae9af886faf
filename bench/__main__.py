"""``python -m bench [--suite NAME] [flags]``: run one benchmark suite (``bench/README.md``).

Suites: ``losses`` (the default: elementwise, cross-entropy, focal and box losses,
``bench/run.py``), ``image`` (SSIM), ``metric`` (dense vs chunked all-pairs losses),
``multitask`` (multi-task train steps), ``gpu`` (the accelerator suite,
``bench/gpu.py``), ``dense`` (dense-head detection losses and the YOLOv8 criterion vs
their torch formulas), ``detr`` (Hungarian matching and DETR's criterion) and
``families`` (the keypoint, geometry, long-tail and proxy losses vs their reference
libraries or torch formulas, ``bench/families.py``). Every other flag goes to the
suite: ``python -m bench --suite NAME -h``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

SUITES = ("losses", "image", "metric", "multitask", "gpu", "dense", "detr", "families")


def split_suite(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``(suite, the other arguments)`` from ``--suite NAME`` / ``--suite=NAME``."""
    rest: list[str] = []
    suite = "losses"
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--suite" and i + 1 < len(args):
            suite = args[i + 1]
            i += 2
            continue
        if arg.startswith("--suite="):
            suite = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return suite, rest


def run_suite(suite: str, argv: Sequence[str]) -> object:
    """Runs ``suite`` with ``argv``; returns its ``main``'s result (a report or an exit code)."""
    if suite not in SUITES:
        raise ValueError(f"unknown --suite {suite!r}; known: {', '.join(SUITES)}")
    if suite == "gpu" and "jax" not in sys.modules:
        # JAX and torch share the device: JAX allocates on demand (no 75% preallocation),
        # up to 90% of the memory, leaving torch room for its comparisons.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")
    from importlib import import_module

    module = import_module("bench.run" if suite == "losses" else f"bench.{suite}")
    return module.main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    suite, rest = split_suite(sys.argv[1:] if argv is None else argv)
    if suite not in SUITES:
        print(f"error: unknown --suite {suite!r}; known: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    result = run_suite(suite, rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
