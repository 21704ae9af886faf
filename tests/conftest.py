"""Test configuration: strict promotion so silent broadcasting or dtype mixing fails.

Sets, before any test runs (and before JAX is imported, the XLA flag below):
  * ``jax_numpy_rank_promotion = "raise"``: ``(N,)`` against ``(N, 1)`` and
    other implicit rank promotion is an error, in jaxloss and in the tests.
  * ``jax_numpy_dtype_promotion = "strict"``: no implicit float32/bfloat16 or
    int/float mixing.
"""

import os

# The suite is compile-bound (thousands of small programs, each run once), so
# the CPU backend's LLVM optimisation level is turned down before JAX starts:
# it cuts the suite's time by about a fifth. It changes the speed of the
# generated code, not its arithmetic (no fast-math, no reassociation), and the
# sharding subprocesses inherit it. Set JAXLOSS_TEST_FULL_OPT=1 to keep the
# default level.
if not os.environ.get("JAXLOSS_TEST_FULL_OPT"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


def pytest_collection_modifyitems(session, config, items):
    """Order the collection for pytest-xdist's worksteal scheduler.

    The scheduler hands each worker a contiguous half of the collection (and
    later moves tests from the tail of one queue to an idle worker), so:
      * the sharding tests, the longest single tests (a subprocess each), and the
        documentation tests (one Sphinx build, shared) go first, so that no worker
        starts one while the other runs dry;
      * the battery's tests (tests/test_battery.py) are grouped by loss, so
        that a loss's checks run on one worker and share the programs it has
        already compiled (JAX's caches, and the battery's own).
    The order within each group is unchanged (the sort is stable).
    """
    del session, config

    def group(item):
        path = item.path.name
        if path.startswith("test_sharding") or path == "test_docs.py":
            return (0, "")
        callspec = getattr(item, "callspec", None)
        if path == "test_battery.py" and callspec is not None and "name" in callspec.params:
            return (1, callspec.params["name"])
        return (2, "")

    items.sort(key=group)
