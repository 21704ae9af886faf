"""Gram matrices, style loss and perceptual (feature reconstruction) loss.

Conventions: images and feature maps are channels-last with the batch axis
first, ``(N, H, W, C)`` (any number of spatial axes, ``(N, *spatial, C)``, is
accepted where a Gram matrix is taken). A *feature function* maps an image
batch to its feature maps: a list/tuple of arrays (layers by position), a dict
``name -> array`` (layers by name), or a single array (one layer); every
feature map has the batch axis first and must depend on its own image only
(no batch statistics), so that ``where=`` can drop images. The losses are per
image: the unreduced shape is ``(N,)``.

Precision: the images reach ``feature_fn`` in their own dtype (the feature
network decides how it computes); the features are cast to float32 (or
float64) for the differences, the Gram matrices and the means, and the result
has the images' dtype. Gram matrices use the highest matmul precision, so
that TF32/bfloat16 matmul passes on accelerators do not eat the difference of
two Grams.

The VGG-16 feature extractor of Johnson et al. lives in
:mod:`jaxloss.image.vgg` (it needs Flax, and the user supplies the weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxloss import _checks, _reduce
from jaxloss._checks import Reduction
from jaxloss._numerics import abs_zero_grad
from jaxloss.registry import _builtin

__all__ = [
    "gram_matrix",
    "perceptual_loss",
    "style_loss",
]

Features = ArrayLike | Sequence[ArrayLike] | Mapping[str, ArrayLike]
FeatureFn = Callable[[Array], Features]
LayerWeights = Sequence[ArrayLike] | Mapping[str, ArrayLike] | ArrayLike
Distance = Literal["l1", "l2"]
DISTANCES: tuple[str, ...] = ("l1", "l2")


# --------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------


def _gram(features: Array, compute: jnp.dtype) -> Array:
    """``F^T F / (P C)`` per image of ``(N, *spatial, C)`` features, in ``compute``."""
    n, c = features.shape[0], features.shape[-1]
    positions = math.prod(features.shape[1:-1])
    flat = features.astype(compute).reshape(n, positions, c)  # [N, P, C]
    gram = jnp.einsum("npc,npd->ncd", flat, flat, precision=jax.lax.Precision.HIGHEST,
                      preferred_element_type=compute)  # [N, C, C]
    return gram * (1.0 / max(positions * c, 1))


def _image_pair(predictions: ArrayLike, targets: ArrayLike, *, min_rank: int,
                what: str) -> tuple[Array, Array, jnp.dtype, jnp.dtype]:
    """Validates the two image (or feature) batches; both in their common dtype."""
    p = _checks.float_input(predictions, "predictions")
    t = _checks.float_input(targets, "targets")
    _checks.check_same_shape(t, "targets", p, "predictions")
    if p.ndim < min_rank:
        raise ValueError(
                f"predictions must be {what} with the batch axis first (rank >= {min_rank}); "
                f"got shape {p.shape} (rank {p.ndim})."
        )
    compute, result = _checks.compute_dtype(p, t)
    return p.astype(result), t.astype(result), compute, result


def _layers(out: Any, n: int, min_rank: int, role: str) -> tuple[list[tuple[Any, Array]], bool]:
    """The feature maps ``feature_fn`` returned, as ``[(key, array)]``, and whether by name."""
    if isinstance(out, Mapping):
        items, by_name = list(out.items()), True
    elif isinstance(out, (list, tuple)):
        items, by_name = list(enumerate(out)), False
    elif isinstance(out, jax.Array) or hasattr(out, "__array__"):
        items, by_name = [(0, out)], False
    else:
        raise TypeError(
                f"feature_fn must return a list/tuple or a dict of feature maps (or one array); "
                f"got {type(out).__name__} for the {role}."
        )
    if not items:
        raise ValueError(f"feature_fn returned no feature maps for the {role}.")
    layers = []
    for key, value in items:
        label = f"feature map {key!r} of the {role}"
        value = _checks.float_input(value, label)
        if value.ndim < min_rank or value.shape[0] != n:
            kind = "(N, ..., C)" if min_rank == 2 else "(N, *spatial, C)"
            raise ValueError(
                    f"{label} has shape {value.shape}; expected {kind} of rank >= {min_rank} "
                    f"with the batch axis first (N = {n}, the batch size of the images)."
            )
        layers.append((key, value))
    return layers, by_name


def _select(
        layers: list[tuple[Any, Array]], by_name: bool, layer_weights: Any, compute: jnp.dtype,
) -> list[tuple[Any, Array | None]]:
    """``[(key, weight)]`` of the layers that count; ``weight`` None means 1."""
    keys = [key for key, _ in layers]
    if layer_weights is None:
        return [(key, None) for key in keys]
    if by_name:
        if not isinstance(layer_weights, Mapping):
            raise TypeError(
                    f"feature_fn returns a dict of feature maps {keys}, so layer_weights must be "
                    f"a dict name -> weight; got {type(layer_weights).__name__}."
            )
        unknown = [name for name in layer_weights if name not in keys]
        if unknown:
            raise ValueError(
                    f"layer_weights names unknown layers {unknown}; feature_fn returns {keys}."
            )
        if not layer_weights:
            raise ValueError("layer_weights is an empty dict: it selects no layer.")
        chosen = [(key, layer_weights[key]) for key in keys if key in layer_weights]
    else:
        if isinstance(layer_weights, Mapping):
            raise TypeError(
                    f"feature_fn returns {len(keys)} feature maps by position, so layer_weights "
                    "must be a sequence of weights, one per map; got a dict."
            )
        if isinstance(layer_weights, (str, bytes)) or not (
                isinstance(layer_weights, Sequence) or getattr(layer_weights, "ndim", None) == 1
        ):
            raise TypeError(
                    "layer_weights must be a sequence of weights (one per feature map) or a "
                    f"1-D array; got {layer_weights!r}."
            )
        if len(layer_weights) != len(keys):
            raise ValueError(
                    f"layer_weights has {len(layer_weights)} entries but feature_fn returns "
                    f"{len(keys)} feature maps; give one weight per map."
            )
        chosen = list(zip(keys, layer_weights, strict=True))
    out: list[tuple[Any, Array | None]] = []
    for key, weight in chosen:
        name = f"layer_weights[{key!r}]"
        _checks.check_range(weight, name, low=0.0)
        out.append((key, _checks.hyperparameter(weight, name, compute)))
    return out


def _feature_pairs(
        feature_fn: Any, p: Array, t: Array, min_rank: int, layer_weights: Any,
        compute: jnp.dtype,
) -> list[tuple[Array | None, Array, Array]]:
    """``[(weight, features of predictions, features of targets)]`` of the counted layers."""
    if not callable(feature_fn):
        raise TypeError(f"feature_fn must be callable; got {feature_fn!r}.")
    n = p.shape[0]
    fp, by_name = _layers(feature_fn(p), n, min_rank, "predictions")
    ft, by_name_t = _layers(feature_fn(t), n, min_rank, "targets")
    keys_p, keys_t = [k for k, _ in fp], [k for k, _ in ft]
    if by_name != by_name_t or keys_p != keys_t:
        raise ValueError(
                f"feature_fn returned layers {keys_p} for the predictions but {keys_t} for the "
                "targets; it must return the same layers for both."
        )
    maps_p, maps_t = dict(fp), dict(ft)
    for key in keys_p:
        if maps_p[key].shape != maps_t[key].shape:
            raise ValueError(
                    f"feature map {key!r} has shape {maps_p[key].shape} for the predictions but "
                    f"{maps_t[key].shape} for the targets."
            )
    return [(weight, maps_p[key].astype(compute), maps_t[key].astype(compute))
            for key, weight in _select(list(maps_p.items()), by_name, layer_weights, compute)]


def _weighted_sum(terms: list[tuple[Array | None, Array]]) -> Array:
    total = None
    for weight, term in terms:
        term = term if weight is None else weight * term
        total = term if total is None else total + term
    assert total is not None  # _layers and _select never leave an empty list of layers
    return total


# --------------------------------------------------------------------------------------
# Public functions.
# --------------------------------------------------------------------------------------


def gram_matrix(features: ArrayLike) -> Array:
    r"""Gram matrix of channel correlations per image, normalised by the map size.

    .. math:: G_{cd} = \frac{1}{H W C} \sum_{h, w} F_{h w c} F_{h w d}

    Convention: Johnson et al.'s normalisation by ``H W C`` (Gatys et al. do
    not normalise). Any number of spatial axes is accepted and flattened:
    ``(N, *spatial, C)`` is normalised by ``prod(spatial) C``. The sum is
    accumulated in float32 (float64 for float64 input) with the highest matmul
    precision; the result has the input's dtype.

    Args:
      features: floating ``(N, H, W, C)`` feature maps (or ``(N, *spatial, C)``
        with at least one spatial axis).

    Returns:
      ``(N, C, C)``, symmetric and positive semi-definite.

    Raises:
      TypeError: integer ``features``.
      ValueError: ``features`` has rank below 3.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> f = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # N=1, H=1, W=2, C=2
      >>> jaxloss.gram_matrix(f)  # [[1+9, 2+12], [2+12, 4+16]] / 4
      Array([[[2.5, 3.5],
              [3.5, 5. ]]], dtype=float32)

    References:
      Gatys et al., `Image Style Transfer Using Convolutional Neural Networks
      <https://openaccess.thecvf.com/content_cvpr_2016/html/Gatys_Image_Style_Transfer_CVPR_2016_paper.html>`_,
      CVPR 2016; Johnson et al., `Perceptual Losses for Real-Time Style
      Transfer and Super-Resolution <https://arxiv.org/abs/1603.08155>`_,
      ECCV 2016. Equivalent to ``f = x.view(n, c, h * w);
      torch.bmm(f, f.transpose(1, 2)) / (c * h * w)`` on channels-first
      ``x`` (PyTorch examples' ``fast_neural_style``).
    """
    f = _checks.float_input(features, "features")
    if f.ndim < 3:
        raise ValueError(
                f"features must be (N, H, W, C) feature maps (rank >= 3: batch, spatial axes, "
                f"channels); got shape {f.shape} (rank {f.ndim})."
        )
    compute, result = _checks.compute_dtype(f)
    return _gram(f, compute).astype(result)


@_builtin("image")
def style_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    feature_fn: FeatureFn | None = None,
    layer_weights: LayerWeights | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Style loss: weighted squared Frobenius distance of Gram matrices, per image.

    .. math::

        \ell_n = \sum_l w_l \left\| G\big(\phi_l(x_n)\big) - G\big(\phi_l(y_n)\big)
                 \right\|_F^2

    with :func:`gram_matrix` ``G`` (normalised by ``H_l W_l C_l``) and the
    feature maps ``phi_l`` that ``feature_fn`` returns.

    Convention: Johnson et al.'s style reconstruction loss (squared Frobenius
    norm, summed over the ``C_l x C_l`` entries), summed over layers. Gatys et
    al.'s layer term ``E_l`` is a quarter of it (their Grams are
    unnormalised, their ``1 / (4 N_l^2 M_l^2)`` factor cancels the
    normalisation). ``feature_fn=None`` means ``predictions`` and ``targets``
    are already one layer's feature maps. ``layer_weights``: ``None`` weights
    every layer 1; a sequence gives one weight per map of a list/tuple output;
    a dict ``name -> weight`` for a dict output selects the named layers only.
    ``where`` drops whole images: they are zeroed before ``feature_fn`` sees
    them, so a NaN there reaches neither value nor gradient.

    Args:
      predictions: floating ``(N, H, W, C)`` images (any shape with the batch
        axis first that ``feature_fn`` accepts), or with ``feature_fn=None``
        feature maps ``(N, *spatial, C)``.
      targets: floating array of the same shape (the style images).
      feature_fn: callable mapping a batch to its feature maps: a list/tuple,
        a dict ``name -> array`` or one array, each ``(N, *spatial, C)``, each
        image's maps depending on that image only (e.g. a closure over a
        network's parameters, or :func:`jaxloss.vgg16_features`'s module).
        ``None``: the inputs are the feature maps.
      layer_weights: non-negative weights, Python floats or JAX scalars
        (traceable): a sequence (list/tuple output) or a dict (dict output,
        a subset of its names).
      where: boolean mask broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` shape ``(N,)``, in the dtype
      of the inputs.

    Raises:
      TypeError: integer inputs or feature maps, ``feature_fn`` not callable,
        a dict of weights for list outputs or a sequence for dict outputs.
      ValueError: shapes differ, a feature map of rank below 3 or without the
        batch axis, ``layer_weights`` of the wrong length, naming an unknown
        layer or negative (when concrete), or ``reduction`` is unknown.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([[[[1.0, 0.0]]]])  # one 1x1 map, 2 channels: G = [[.5, 0], [0, 0]]
      >>> y = jnp.array([[[[0.0, 1.0]]]])  # G = [[0, 0], [0, .5]]
      >>> float(jaxloss.style_loss(x, y))  # .5**2 + .5**2
      0.5

    References:
      Johnson et al., `Perceptual Losses for Real-Time Style Transfer and
      Super-Resolution <https://arxiv.org/abs/1603.08155>`_, ECCV 2016
      (style reconstruction loss); Gatys et al., `Image Style Transfer Using
      Convolutional Neural Networks
      <https://openaccess.thecvf.com/content_cvpr_2016/html/Gatys_Image_Style_Transfer_CVPR_2016_paper.html>`_,
      CVPR 2016. In PyTorch terms, per layer
      ``((gram(fx) - gram(fy)) ** 2).sum((1, 2))`` with ``gram`` as in
      :func:`gram_matrix`; PyTorch examples' ``fast_neural_style`` uses
      ``mse_loss`` of the Grams, i.e. this divided by ``C_l ** 2``.
    """
    _checks.check_reduction(reduction)
    if feature_fn is None:
        p, t, compute, dtype = _image_pair(predictions, targets, min_rank=3,
                                           what="(N, H, W, C) feature maps")
        p, t = _reduce.mask_rows(where, p, t)
        # One layer, by position: layer_weights may still be a one-element sequence.
        ((_, weight),) = _select([(0, p)], False, layer_weights, compute)
        pairs = [(weight, p.astype(compute), t.astype(compute))]
    else:
        p, t, compute, dtype = _image_pair(predictions, targets, min_rank=1,
                                           what="an image batch")
        p, t = _reduce.mask_rows(where, p, t)
        pairs = _feature_pairs(feature_fn, p, t, 3, layer_weights, compute)
    terms = []
    for weight, fp, ft in pairs:
        difference = _gram(fp, compute) - _gram(ft, compute)  # [N, C, C]
        terms.append((weight, jnp.sum(jnp.square(difference), axis=(1, 2))))
    values = _weighted_sum(terms)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)


@_builtin("image")
def perceptual_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    feature_fn: FeatureFn | None = None,
    layer_weights: LayerWeights | None = None,
    distance: Distance = "l1",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    r"""Perceptual (feature reconstruction) loss: distance of feature maps, per image.

    .. math::

        \ell_n = \sum_l \frac{w_l}{H_l W_l C_l} \sum_{h, w, c}
                 \big|\phi_l(x_n) - \phi_l(y_n)\big|_{hwc}^{\,p}, \qquad
                 p = 1 \;(\texttt{"l1"}),\; 2 \;(\texttt{"l2"})

    Convention: each layer's term is the *mean* over its feature map (all
    non-batch axes), so layers of different sizes are comparable; ``"l2"``
    is Johnson et al.'s feature reconstruction loss (squared Euclidean
    distance over ``C_l H_l W_l``), ``"l1"`` the common L1 variant (e.g.
    ESRGAN, pix2pixHD-style VGG losses). This is not LPIPS (no learned
    per-channel weights, no unit-normalised channels). ``layer_weights``:
    ``None`` weights every layer 1; a sequence gives one weight per map of a
    list/tuple output; a dict ``name -> weight`` for a dict output selects
    the named layers only. ``where`` drops whole images: they are zeroed
    before ``feature_fn`` sees them, so a NaN there reaches neither value nor
    gradient.

    Args:
      predictions: floating ``(N, H, W, C)`` images (any shape with the batch
        axis first that ``feature_fn`` accepts).
      targets: floating array of the same shape.
      feature_fn: required callable mapping a batch to its feature maps: a
        list/tuple, a dict ``name -> array`` or one array, each
        ``(N, ...)`` with the batch axis first, each image's maps depending on
        that image only (e.g. a closure over a network's parameters, or
        :func:`jaxloss.vgg16_features`'s module). Keyword-only; its default
        ``None`` is an error.
      layer_weights: non-negative weights, Python floats or JAX scalars
        (traceable): a sequence (list/tuple output) or a dict (dict output,
        a subset of its names).
      distance: ``"l1"`` (mean absolute difference) or ``"l2"`` (mean squared
        difference).
      where: boolean mask broadcastable to ``(N,)``.
      weights: per-image weights broadcastable to ``(N,)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      The reduced loss; for ``reduction="none"`` shape ``(N,)``, in the dtype
      of the inputs.

    Raises:
      TypeError: integer inputs or feature maps, ``feature_fn`` not callable,
        a dict of weights for list outputs or a sequence for dict outputs.
      ValueError: ``feature_fn`` missing, shapes differ, a feature map without
        the batch axis, ``layer_weights`` of the wrong length, naming an
        unknown layer or negative (when concrete), ``distance`` not ``"l1"``
        or ``"l2"``, or ``reduction`` is unknown.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x, y = jnp.ones((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1))
      >>> two_layers = lambda img: [img, 2.0 * img]
      >>> float(jaxloss.perceptual_loss(x, y, feature_fn=two_layers))  # 1 + 2
      3.0
      >>> float(jaxloss.perceptual_loss(x, y, feature_fn=two_layers, distance="l2",
      ...                               layer_weights=(1.0, 0.5)))  # 1 + 0.5 * 4
      3.0
      >>> named = lambda img: {"a": img, "b": 2.0 * img}
      >>> float(jaxloss.perceptual_loss(x, y, feature_fn=named, layer_weights={"b": 0.25}))
      0.5

    References:
      Johnson et al., `Perceptual Losses for Real-Time Style Transfer and
      Super-Resolution <https://arxiv.org/abs/1603.08155>`_, ECCV 2016
      (feature reconstruction loss); Dosovitskiy and Brox, `Generating Images
      with Perceptual Similarity Metrics based on Deep Networks
      <https://arxiv.org/abs/1602.02644>`_, 2016. Per layer equivalent to
      ``torch.nn.functional.l1_loss(fx, fy)`` / ``mse_loss(fx, fy)`` (the
      ``"mean"`` of both is this loss's ``"mean"`` over images), e.g. PyTorch
      examples' ``fast_neural_style`` content loss ``mse_loss(vgg(y).relu2_2,
      vgg(x).relu2_2)``.
    """
    _checks.check_reduction(reduction)
    _checks.check_choice(distance, "distance", DISTANCES)
    if feature_fn is None:
        raise ValueError(
                "perceptual_loss needs feature_fn=: a function mapping an image batch to its "
                "feature maps (a list/tuple or dict of (N, ...) arrays), e.g. "
                "jaxloss.vgg16_features(path). To compare feature maps you already have, use "
                "feature_fn=lambda f: f."
        )
    p, t, compute, dtype = _image_pair(predictions, targets, min_rank=1, what="an image batch")
    p, t = _reduce.mask_rows(where, p, t)
    terms = []
    for weight, fp, ft in _feature_pairs(feature_fn, p, t, 2, layer_weights, compute):
        difference = fp - ft
        pointwise = abs_zero_grad(difference) if distance == "l1" else jnp.square(difference)
        terms.append((weight, jnp.mean(pointwise, axis=tuple(range(1, pointwise.ndim)))))
    values = _weighted_sum(terms)
    return _reduce.reduce_loss(values, reduction=reduction, where=where, weights=weights,
                               dtype=dtype)
