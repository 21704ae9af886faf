"""LPIPS: the learned perceptual image patch similarity of Zhang et al., as a loss.

The loss needs no Flax: ``network`` is any object that maps ``(N, H, W, 3)``
images in ``[-1, 1]`` to a list of feature maps ``(N, h_k, w_k, C_k)`` and
has ``linear_weights``, one non-negative vector ``(C_k,)`` per map. The
networks of the ``lpips`` package (AlexNet or VGG-16 trunks and their linear
heads) are :class:`jaxloss.LPIPSNetwork`, loaded from user-supplied weights by
:func:`jaxloss.lpips_network` (in :mod:`jaxloss.image.lpips_net`, which needs
Flax).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import sqrt_at_zero
from jaxloss.image._common import image_pair
from jaxloss.registry import _builtin

__all__ = ["LPIPSFeatures", "lpips_loss"]

# The lpips package's normalize_tensor: x / (||x|| + eps) over channels.
_EPS = 1e-10


class LPIPSFeatures(Protocol):
    """What ``lpips_loss`` needs of ``network`` (:class:`jaxloss.LPIPSNetwork` is one)."""

    @property
    def linear_weights(self) -> Sequence[ArrayLike]: ...

    def __call__(self, images: Array, /) -> Sequence[Array]: ...


def _unit(features: Array) -> Array:
    norm = sqrt_at_zero(jnp.sum(features * features, axis=-1, keepdims=True))
    return features / (norm + _EPS)


def _lpips_values(features: Sequence[Array], heads: Sequence[Array], n: int) -> Array:
    total = jnp.zeros((n,), jnp.float32)
    for f, w in zip(features, heads, strict=True):  # static: one term per layer (5)
        f = f.astype(jnp.float32)
        diff = jnp.square(_unit(f[:n]) - _unit(f[n:]))  # [N, h, w, C]
        head = w.astype(jnp.float32).reshape(1, 1, 1, -1)
        total = total + jnp.mean(jnp.sum(diff * head, axis=-1), axis=(1, 2))
    return total


@_builtin("image")
def lpips_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    network: LPIPSFeatures,
    normalize: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""LPIPS distance between image pairs, per image (Zhang et al. 2018).

    .. math::

        \ell_n = \sum_k \frac{1}{h_k w_k} \sum_{i,j} \sum_c w_{k,c}
                 \big(\hat f^k_{ijc}(x) - \hat f^k_{ijc}(y)\big)^2,
        \qquad \hat f = f / (\lVert f \rVert_c + 10^{-10})

    over the feature maps ``f^k`` of ``network`` (unit-normalised over
    channels at every position) and its linear heads ``w_k``.

    Convention: the ``lpips`` package's (version 0.1, ``spatial=False``):
    images in ``[-1, 1]``; ``normalize=True`` takes ``[0, 1]`` images and maps
    them with ``2 x - 1`` (lpips's ``normalize=True``). Both images go through
    ``network`` in one batch of ``2 N``. The norm's gradient is 0 at an
    all-zero feature vector (where torch's is NaN). The network is not
    trained by this loss unless you differentiate with respect to its state.

    Args:
      predictions: floating ``(N, H, W, 3)`` RGB images, channels-last.
      targets: floating images of the same shape.
      network: the LPIPS network, e.g. ``jaxloss.lpips_network(path)``; any
        object with ``__call__(images) -> [feature maps]`` and
        ``linear_weights`` works.
      normalize: ``True`` for ``[0, 1]`` images, static.
      where: boolean mask of the images to include, broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` one value per image, ``(N,)``.

    Raises:
      ValueError: images not ``(N, H, W, 3)``, shapes differ, a network
        whose heads do not match its features, an unknown ``reduction``.
      TypeError: integer images, a non-bool ``normalize``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> class Pixels:  # a one-layer "network": the pixels themselves
      ...     linear_weights = (jnp.ones(3),)
      ...     def __call__(self, images):
      ...         return [images]
      >>> x = jnp.zeros((1, 4, 4, 3)).at[..., 0].set(1.0)
      >>> float(jaxloss.lpips_loss(x, jnp.roll(x, 1, axis=-1), network=Pixels()))
      2.0

    References:
      Zhang et al., `The Unreasonable Effectiveness of Deep Features as a
      Perceptual Metric <https://arxiv.org/abs/1801.03924>`_, CVPR 2018.
      ``lpips.LPIPS(net="alex")(p, t, normalize=normalize).flatten()`` on
      NCHW images, with the same trunk and heads.
    """
    _checks.check_reduction(reduction)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a static bool; got {normalize!r}.")
    x, y, dtype = image_pair(predictions, targets)
    if x.shape[-1] != 3:
        raise ValueError(f"predictions must be RGB images (N, H, W, 3); got shape {x.shape}.")
    heads = tuple(jnp.asarray(w) for w in network.linear_weights)
    x, y = _reduce.mask_rows(where, x, y)
    images = jnp.concatenate([x, y], axis=0)  # [2N, H, W, 3]
    if normalize:
        images = 2.0 * images - 1.0
    features = list(network(images))
    if len(features) != len(heads) or any(
            f.ndim != 4 or f.shape[0] != images.shape[0] or f.shape[-1:] != w.shape
            for f, w in zip(features, heads, strict=False)):
        raise ValueError(
                f"network gave {len(features)} feature maps of shapes "
                f"{[tuple(f.shape) for f in features]} for {len(heads)} linear heads of shapes "
                f"{[tuple(w.shape) for w in heads]}; expected one (2N, h, w, C_k) map per (C_k,) "
                "head.")
    values = _lpips_values(features, heads, x.shape[0])
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)
