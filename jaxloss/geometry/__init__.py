"""Geometry: depth, optical flow and image registration.

Conventions: channels-last layouts. Depth, disparity and inverse depth are
``(N, H, W, 1)``; flow ``(N, H, W, 2)``; images ``(N, H, W, C)`` and volumes
``(N, D, H, W, C)``; displacement fields ``(N, *spatial, ndim)``. Unreduced
shapes: ``(N,)`` for SILog, scale-shift-invariant, edge-aware smoothness and
mutual information; ``(N, H, W)`` for the endpoint error; the NCC map for
LNCC; ``(N, *(spatial - 2), ndim)`` for the bending energy.

Modules: ``depth`` (SILog, MiDaS's scale-and-shift-invariant loss, edge-aware
smoothness), ``flow`` (endpoint error), ``registration`` (LNCC, mutual
information, bending energy); ``_common`` holds their private helpers.
"""

from jaxloss.geometry import depth, flow, registration  # noqa: F401
from jaxloss.geometry.depth import edge_aware_smoothness_loss as edge_aware_smoothness_loss
from jaxloss.geometry.depth import scale_shift_invariant_loss as scale_shift_invariant_loss
from jaxloss.geometry.depth import silog_loss as silog_loss
from jaxloss.geometry.flow import endpoint_error_loss as endpoint_error_loss
from jaxloss.geometry.registration import bending_energy_loss as bending_energy_loss
from jaxloss.geometry.registration import lncc_loss as lncc_loss
from jaxloss.geometry.registration import mutual_information_loss as mutual_information_loss

__all__ = [
    "bending_energy_loss",
    "edge_aware_smoothness_loss",
    "endpoint_error_loss",
    "lncc_loss",
    "mutual_information_loss",
    "scale_shift_invariant_loss",
    "silog_loss",
]
