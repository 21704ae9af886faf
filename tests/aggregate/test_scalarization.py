"""``jaxloss.aggregate.scalarization``: mean and sum."""

from __future__ import annotations

import numpy as np
import pytest

from tests.aggregate._references import (
    random_jacobian,
    run,
)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_mean_and_sum(K):
    J = random_jacobian(K)
    np.testing.assert_allclose(run("mean", J), J.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run("sum", J), J.sum(0), rtol=1e-6, atol=1e-6)
