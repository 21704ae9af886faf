"""Shared by the tests of ``tests/weighting/``: tolerances and one instance of every strategy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxloss import weighting

RTOL, ATOL = 1e-5, 1e-6


def _f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


def _all_strategies():
    return {
        "static": weighting.static([1.0, 0.5]),
        "uncertainty": weighting.uncertainty(),
        "uncertainty_half": weighting.uncertainty(half=True),
        "dwa": weighting.dwa(),
        "gradnorm": weighting.gradnorm(alpha=1.5, lr=0.01),
        "random": weighting.random_weighting(key=3),
        "famo": weighting.famo(),
        "geometric_mean": weighting.geometric_mean(),
        "db_mtl": weighting.db_mtl(),
        "stch": weighting.stch(warmup_steps=3, nadir_steps=2),
    }
