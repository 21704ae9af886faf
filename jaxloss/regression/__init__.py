"""Per-element regression and robust losses.

Conventions: ``predictions`` and ``targets`` are floating arrays of exactly
the same shape (no silent broadcasting); the unreduced loss
(``reduction="none"``) has that shape; ``reduction="mean"`` is the mean over
all elements, or the weighted mean over the entries ``where`` selects.
Half-precision inputs are computed in float32 and returned in their dtype.

Modules: ``elementwise`` (MSE, MAE, Huber, smooth L1, log-cosh, quantile),
``robust`` (Charbonnier, Cauchy, Geman-McClure, Welsch, Barron's robust
loss), ``probabilistic`` (Gaussian NLL); ``_common`` holds their helpers.
"""

from jaxloss.regression.elementwise import huber_loss as huber_loss
from jaxloss.regression.elementwise import log_cosh_loss as log_cosh_loss
from jaxloss.regression.elementwise import mae_loss as mae_loss
from jaxloss.regression.elementwise import mse_loss as mse_loss
from jaxloss.regression.elementwise import quantile_loss as quantile_loss
from jaxloss.regression.elementwise import smooth_l1_loss as smooth_l1_loss
from jaxloss.regression.probabilistic import gaussian_nll_loss as gaussian_nll_loss
from jaxloss.regression.robust import cauchy_loss as cauchy_loss
from jaxloss.regression.robust import charbonnier_loss as charbonnier_loss
from jaxloss.regression.robust import geman_mcclure_loss as geman_mcclure_loss
from jaxloss.regression.robust import robust_loss as robust_loss
from jaxloss.regression.robust import welsch_loss as welsch_loss

__all__ = [
    "cauchy_loss",
    "charbonnier_loss",
    "gaussian_nll_loss",
    "geman_mcclure_loss",
    "huber_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "quantile_loss",
    "robust_loss",
    "smooth_l1_loss",
    "welsch_loss",
]
