"""The loss gallery: one figure per registered loss, generated from the registry.

Run by ``docs/conf.py`` at every build (``python docs/gallery.py OUTDIR`` runs it
alone). Each registered loss is tried against a list of *probes*, generic
input builders chosen by the loss's family and signature:

* elementwise and per-sample losses: value and gradient against the residual
  (regression), the logit (binary and multi-class classification) or the
  first array, with the first numeric hyperparameter at 0.5x, 1x and 2x its
  default;
* overlap (segmentation) losses: the loss of a square shifted off its target
  against the IoU of the two masks;
* box losses: the loss against the shift and the scale of a box;
* metric and self-supervised losses: the loss against the angle between
  embeddings that should agree;
* image losses: the loss against the strength of added noise;
* rotated boxes ``(cx, cy, w, h, θ)``: the loss against the angle and the
  shift of a box; binned regression (logits over ``R + 1`` bins): the loss
  against the target position for a few fixed distributions;
* long-tail losses taking class counts or priors: value and gradient against
  the true-class logit, for a frequent and a rare class;
* keypoints: the loss against the distance of every keypoint for three
  instance areas, or against the offset of a 1-D coordinate peak;
* dense maps (flow, depth, displacement): the loss of ``a × map + b + σ noise``
  against the map, one sweep of ``a``, ``b`` and ``σ`` each.

The first probe that gives a finite curve wins. A loss that no probe can
draw is listed on the page with the reason, generated from its signature
and the probes' errors: the script never fails because of a loss. Figures are
cached by the loss's source file and this script, so a rebuild redraws only
what changed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import pathlib
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np

G = 121  # points of a 1-D sweep
FACTORS = (0.5, 1.0, 2.0)  # multiples of a hyperparameter's default
ZERO_DEFAULT = (0.0, 0.1, 0.3)  # values tried when the default is 0
NOT_SWEPT = {"log_epsilon", "smooth"}  # numerical guards, not shapes of the loss


class ProbeError(Exception):
    """A probe does not apply to this loss (the message says why)."""


@dataclass
class Panel:
    xlabel: str
    ylabel: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    reference: tuple[str, np.ndarray, np.ndarray] | None = None
    logx: bool = False


@dataclass
class Drawing:
    probe: str
    panels: list[Panel]
    note: str = ""


@dataclass
class Result:
    name: str
    family: str
    drawing: Drawing | None = None
    reason: str = ""
    tried: list[str] = field(default_factory=list)


def _jax() -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp

    return jax, jnp


def _positional(fn: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.name not in ("where", "weights", "reduction")}


def _sweep(fn: Callable[..., Any]) -> tuple[str | None, list[float]]:
    """The hyperparameter to vary (the first float one) and its candidate values."""
    floats = [(k, v) for k, v in _keyword_defaults(fn).items()
              if isinstance(v, float) and not isinstance(v, bool)]
    # a tiny default (1e-7, 1e-5) is a numerical guard, not a shape of the loss
    swept = [(k, v) for k, v in floats if k not in NOT_SWEPT and not 0 < abs(v) < 1e-4]
    if not swept:
        return None, []
    name, default = swept[0]
    values = [default * f for f in FACTORS] if default != 0 else list(ZERO_DEFAULT)
    return name, values


def _finite(values: Any, size: int | None = None) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if size is not None:
        if out.size != size:
            raise ProbeError(f"unreduced shape {out.shape} has no axis of the {size} probe points")
        out = out.reshape(size)
    if not np.all(np.isfinite(out)):
        raise ProbeError("non-finite values on the probe")
    return out


@functools.cache
def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(*args, reduction="none", **hp)`` under one ``jit``, the hyperparameters traced."""
    jax, _ = _jax()
    return jax.jit(lambda args, hp: fn(*args, reduction="none", **hp))


def _none(fn: Callable[..., Any], *args: Any, **hp: Any) -> Any:
    """``fn(*args, reduction="none", **hp)``: compiled, eager where that fails.

    A loss runs op by op in a fraction of the time that compiling each
    operation for each new shape takes, so the gallery compiles whole calls,
    once for every value of a hyperparameter. Each value is first checked by
    tracing the loss with it as a Python number (``eval_shape``: no compiling),
    so that a loss still rejects an out-of-range value; a loss that cannot be
    traced, or whose compiled value is not finite, runs eagerly and raises
    its own error.
    """
    jax, _ = _jax()
    try:
        jax.eval_shape(lambda *a: fn(*a, reduction="none", **hp), *args)
        out = np.asarray(_compiled(fn)(args, hp), dtype=np.float64)
        if np.all(np.isfinite(out)):
            return out
    except Exception:
        pass
    return fn(*args, reduction="none", **hp)


def _hyper_curves(fn: Callable[..., Any], curve: Callable[..., tuple[np.ndarray, ...]],
                  ) -> dict[str, tuple[np.ndarray, ...]]:
    """``curve(**hp)`` for each value of the swept hyperparameter; the default alone otherwise."""
    name, values = _sweep(fn)
    if name is None:
        return {"default": curve()}
    out, first_error = {}, None
    for value in values:
        try:
            out[f"{name}={value:g}"] = curve(**{name: value})
        except Exception as error:  # an out-of-range value: drop it
            first_error = first_error or error
    if not out:
        raise first_error or ProbeError("no hyperparameter value works")
    return out


def _elementwise(fn: Callable[..., Any], x: np.ndarray, build: Callable[[Any], tuple],
                 grad_of: Callable[[Any], Any] | None = None) -> Callable[..., tuple]:
    """A curve function: value (``reduction="none"``) and derivative along ``x``."""
    jax, jnp = _jax()

    def both(z: Any, hp: dict[str, Any]) -> tuple[Any, Any]:
        value, vjp = jax.vjp(lambda z: fn(*build(z), reduction="none", **hp), z)
        return value, vjp(jnp.ones_like(value))[0]

    fast = jax.jit(both)

    def curve(**hp: Any) -> tuple[np.ndarray, np.ndarray]:
        xs = jnp.asarray(x, dtype=jnp.float32)
        with contextlib.suppress(Exception):  # compiled once; eager below where that fails
            jax.eval_shape(lambda z: both(z, hp), xs)  # hp concrete: range checks run (see _none)
            value, grad = fast(xs, hp)
            return _finite(value, x.size), _finite(grad, x.size)
        value = _finite(fn(*build(xs), reduction="none", **hp), x.size)
        total = lambda z: jnp.sum(fn(*build(z), reduction="none", **hp))  # noqa: E731
        grad = _finite(jax.grad(total)(xs), x.size)
        return value, grad

    return curve


def _value_grad_panels(curves: dict[str, tuple], x: np.ndarray, xlabel: str) -> list[Panel]:
    return [Panel(xlabel, "loss", {k: (x, v[0]) for k, v in curves.items()}),
            Panel(xlabel, "gradient", {k: (x, v[1]) for k, v in curves.items()})]


# -- probes: each returns a Drawing or raises -------------------------------------------


def probe_residual(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Elementwise (or per-sample) loss of a prediction against a zero target."""
    _, jnp = _jax()
    if not 1 <= len(arrays) <= 3:
        raise ProbeError(f"takes {len(arrays)} arrays, not 1 to 3")
    x = np.linspace(-3.0, 3.0, G)
    errors = []
    for shape in ((G,), (G, 1)):
        def build(z, shape=shape):
            z = z.reshape(shape)
            rest = [jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32)]
            return (z, *rest[: len(arrays) - 1])
        try:
            curves = _hyper_curves(fn, _elementwise(fn, x, build))
            break
        except Exception as error:
            errors.append(error)
    else:
        raise errors[-1]
    if family == "regression" and len(arrays) >= 2:
        xlabel = f"residual {arrays[0]} − {arrays[1]}"
    else:
        fixed = ", ".join(f"{a} = {v}" for a, v in zip(arrays[1:], ("0", "1"), strict=False))
        xlabel = arrays[0] + (f" ({fixed})" if fixed else "")
    return Drawing("elementwise", _value_grad_panels(curves, x, xlabel))


def probe_binary_logit(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Elementwise loss of a logit against a positive (+1) target."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    x = np.linspace(-6.0, 6.0, G)
    curves = _hyper_curves(fn, _elementwise(
        fn, x, lambda z: (z, jnp.ones(z.shape, jnp.float32))))
    return Drawing("binary logit", _value_grad_panels(curves, x, "logit of a positive target"))


def probe_class_logit(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Loss of three-class logits (z, 0, 0) whose target is class 0, against z."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    x = np.linspace(-6.0, 6.0, G)

    def logits(z):
        return jnp.stack([z, jnp.zeros_like(z), jnp.zeros_like(z)], axis=-1)

    errors = []
    for targets in (jnp.zeros(G, jnp.int32),
                    jnp.zeros((G, 3), jnp.float32).at[:, 0].set(1.0)):
        try:
            curves = _hyper_curves(fn, _elementwise(
                fn, x, lambda z, t=targets: (logits(z), t)))
            return Drawing("class logit", _value_grad_panels(
                curves, x, "logit of the target class (others 0)"))
        except Exception as error:
            errors.append(error)
    raise errors[-1]


def _square_masks(shifts: np.ndarray, size: int = 16, side: int = 8) -> tuple[np.ndarray, ...]:
    target = np.zeros((size, size), bool)
    target[4:4 + side, 2:2 + side] = True
    preds = np.zeros((len(shifts), size, size), bool)
    for i, s in enumerate(shifts):
        preds[i, 4:4 + side, 2 + s:2 + s + side] = True
    inter = (preds & target).sum((1, 2))
    union = (preds | target).sum((1, 2))
    return preds, np.broadcast_to(target, preds.shape), inter / union


def probe_overlap(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Segmentation: a square prediction sliding off its target, loss against the IoU."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    shifts = np.arange(0, 9)
    preds, target, iou = _square_masks(shifts)
    logit = jnp.asarray(np.where(preds, 4.0, -4.0), jnp.float32)
    forms = (
        ("two-class logits", jnp.stack([-logit, logit], -1), jnp.asarray(target, jnp.int32)),
        ("binary logits", logit, jnp.asarray(target, jnp.float32)),
        ("binary logits (N, H, W, 1)", logit[..., None],
         jnp.asarray(target, jnp.float32)[..., None]),
    )
    errors = []
    for form, p, t in forms:
        try:
            def curve(p=p, t=t, **hp):
                return (_per_item(fn, (p, t), len(shifts), **hp),)
            curves = _hyper_curves(fn, curve)
            panel = Panel("IoU of the predicted and target squares", "loss",
                          {k: (iou, v[0]) for k, v in curves.items()},
                          reference=("1 − IoU", iou, 1.0 - iou))
            return Drawing("overlap", [panel], note=f"{form}, logits ±4")
        except Exception as error:
            errors.append(error)
    raise errors[-1]


def _per_item(fn: Callable[..., Any], args: tuple, n: int, **hp: Any) -> np.ndarray:
    """The loss of each item of the batch: one call when ``none`` keeps the batch axis."""
    values = np.asarray(_none(fn, *args, **hp), dtype=np.float64)
    if values.ndim >= 1 and values.shape[0] == n:
        return _finite(values.reshape(n, -1).mean(1))
    return _finite([float(fn(*(a[i:i + 1] for a in args), **hp)) for i in range(n)])


def probe_boxes(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Box losses: a box shifted sideways, and a box scaled about its centre."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    target = np.array([0.0, 0.0, 1.0, 1.0])
    shift = np.linspace(-2.5, 2.5, 101)
    scale = np.geomspace(0.2, 5.0, 101)
    shifted = target + np.stack([shift, 0 * shift, shift, 0 * shift], -1)
    half = scale / 2
    scaled = np.stack([0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half], -1)

    def values(boxes, **hp):
        b = jnp.asarray(boxes, jnp.float32)
        t = jnp.asarray(np.broadcast_to(target, boxes.shape), jnp.float32)
        return _finite(_none(fn, b, t, **hp), len(boxes))

    curves = _hyper_curves(fn, lambda **hp: (values(shifted, **hp), values(scaled, **hp)))
    iou_shift = np.clip(1 - np.abs(shift), 0, None) / (1 + np.clip(np.abs(shift), None, 1))
    iou_scale = np.minimum(scale, 1) ** 2 / np.maximum(scale, 1) ** 2
    return Drawing("boxes", [
        Panel("horizontal shift (box widths)", "loss",
              {k: (shift, v[0]) for k, v in curves.items()},
              reference=("1 − IoU", shift, 1 - iou_shift)),
        Panel("scale about the centre", "loss", {k: (scale, v[1]) for k, v in curves.items()},
              reference=("1 − IoU", scale, 1 - iou_scale), logx=True),
    ])


THETA = np.linspace(0.0, np.pi, 37)


def _unit(theta: Any, d: int = 3) -> Any:
    _, jnp = _jax()
    return jnp.stack([jnp.cos(theta), jnp.sin(theta)] + [0 * theta] * (d - 2), -1)


def _theta_curves(fn: Callable[..., Any], build: Callable[[Any], tuple]) -> dict[str, tuple]:
    """The loss (``mean``) at each angle: one vmapped call, or a loop when vmap fails."""
    jax, jnp = _jax()

    def batch(thetas: Any, hp: dict[str, Any]) -> Any:
        return jax.vmap(lambda th: fn(*build(th), **hp))(thetas)

    fast = jax.jit(batch)

    def curve(**hp):
        thetas = jnp.asarray(THETA, jnp.float32)
        with contextlib.suppress(Exception):  # compiled once; eager below where that fails
            jax.eval_shape(lambda t: batch(t, hp), thetas)  # range checks, as in _none
            return (_finite(fast(thetas, hp), len(THETA)),)
        try:
            return (_finite(jax.vmap(lambda th: fn(*build(th), **hp))(thetas), len(THETA)),)
        except ProbeError:
            raise
        except Exception:
            return (_finite([float(fn(*build(th), **hp)) for th in thetas]),)

    return _hyper_curves(fn, curve)


def _angle_drawing(curves: dict[str, tuple], xlabel: str, probe: str) -> Drawing:
    degrees = np.degrees(THETA)
    return Drawing(probe, [Panel(xlabel, "loss", {k: (degrees, v[0]) for k, v in curves.items()})])


def probe_labelled_embeddings(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(embeddings, labels): two classes, each a pair of embeddings θ apart."""
    _, jnp = _jax()
    if len(arrays) != 2 or "label" not in arrays[1]:
        raise ProbeError("takes no (embeddings, labels) pair")
    labels = jnp.array([0, 0, 1, 1], jnp.int32)

    def build(th):
        angles = jnp.stack([0 * th, th, 0 * th + np.pi / 2, np.pi / 2 + th])
        return _unit(angles), labels

    return _angle_drawing(_theta_curves(fn, build),
                          "angle within each class (degrees; classes 90° apart)", "embeddings")


def probe_two_views(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(view_a, view_b): four samples whose second view is rotated θ away from the first."""
    _, jnp = _jax()
    if len(arrays) != 2 or "label" in arrays[1]:
        raise ProbeError("takes no pair of views")
    eye = jnp.eye(4, dtype=jnp.float32)
    nxt = jnp.roll(eye, 1, axis=1)

    def build(th):
        return eye, jnp.cos(th) * eye + jnp.sin(th) * nxt

    return _angle_drawing(_theta_curves(fn, build),
                          "angle between the two views of each sample (degrees)", "two views")


def probe_triplet(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(anchor, positive, negative): the positive θ from the anchor, the negative at 90°."""
    _, jnp = _jax()
    if len(arrays) != 3:
        raise ProbeError("takes other than three arrays")
    anchor = _unit(jnp.zeros(1))
    negative = _unit(jnp.full(1, np.pi / 2))
    return _angle_drawing(_theta_curves(fn, lambda th: (anchor, _unit(th[None]), negative)),
                          "anchor–positive angle (degrees; negative at 90°)", "triplet")


def probe_pairs(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(x1, x2, is_similar): a pair θ apart, labelled similar and dissimilar."""
    _, jnp = _jax()
    if len(arrays) != 3:
        raise ProbeError("takes other than three arrays")
    x1 = _unit(jnp.zeros(1))
    curves = {}
    for label, similar in (("similar", True), ("dissimilar", False)):
        flag = jnp.array([similar])
        for key, value in _theta_curves(fn, lambda th, f=flag: (x1, _unit(th[None]), f)).items():
            curves[f"{label}, {key}" if key != "default" else label] = value
    return _angle_drawing(curves, "angle between the pair (degrees)", "pairs")


def probe_class_matrix(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(embeddings, labels, class matrix): an embedding θ from its class's column."""
    _, jnp = _jax()
    if len(arrays) != 3 or "label" not in arrays[1]:
        raise ProbeError("takes no (embeddings, labels, class matrix) triple")
    labels = jnp.array([0], jnp.int32)
    widths = {1} | {v for v in _keyword_defaults(fn).values()
                    if isinstance(v, int) and not isinstance(v, bool) and 1 < v <= 16}
    errors = []
    for k in sorted(widths):
        # C = 2 classes at 0° and 90° (each repeated k times for sub-centres), d = 3
        columns = _unit(jnp.repeat(jnp.array([0.0, np.pi / 2], jnp.float32), k))  # (2k, 3)
        for matrix in (columns.T, columns):
            try:
                curves = _theta_curves(fn, lambda th, m=matrix: (_unit(th[None]), labels, m))
                xlabel = "angle to its own class (degrees; other class at 90°)"
                return _angle_drawing(curves, xlabel, "class matrix")
            except Exception as error:
                errors.append(error)
    raise errors[-1]


def _image(size: int) -> np.ndarray:
    """A smooth (size, size, 3) test image in [0.25, 0.75]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy)
    return np.repeat(base[..., None], 3, axis=-1)


def probe_image_noise(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Images: the loss of an image with added noise of standard deviation σ."""
    _, jnp = _jax()
    if not 1 <= len(arrays) <= 2:
        raise ProbeError("takes other than one or two arrays")
    sigma = np.linspace(0.0, 0.3, 13)
    errors = []
    for size in (24, 48, 176):  # 176 = 11 × 2^4: five scales of an 11-tap window
        clean = _image(size)
        noise = np.random.default_rng(0).standard_normal(clean.shape)
        batch = jnp.asarray(clean + sigma[:, None, None, None] * noise, jnp.float32)
        target = jnp.asarray(np.broadcast_to(clean, batch.shape), jnp.float32)
        args = (batch, target)[: len(arrays)]
        try:
            curves = _hyper_curves(
                fn, lambda a=args, **hp: (_per_item(fn, a, len(sigma), **hp),))
            return Drawing("image noise", [Panel(
                "standard deviation of the added noise", "loss",
                {k: (sigma, v[0]) for k, v in curves.items()})], note=f"{size}×{size}×3 images")
        except Exception as error:
            errors.append(error)
    raise errors[-1]


# -- second-round probes: rotated boxes, bins, class counts, keypoints, dense maps ------


def probe_rotated_boxes(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Rotated boxes ``(cx, cy, w, h, θ)``: a 4×2 box turned, and shifted, against itself."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    target = np.array([0.0, 0.0, 4.0, 2.0, 0.0])
    angle = np.linspace(0.0, np.pi, 61)
    shift = np.linspace(-6.0, 6.0, 61)
    turned = np.tile(target, (len(angle), 1))
    turned[:, 4] = angle
    shifted = np.tile(target, (len(shift), 1))
    shifted[:, 0] = shift

    def values(boxes, **hp):
        t = jnp.asarray(np.broadcast_to(target, boxes.shape), jnp.float32)
        return _finite(_none(fn, jnp.asarray(boxes, jnp.float32), t, **hp), len(boxes))

    curves = _hyper_curves(fn, lambda **hp: (values(turned, **hp), values(shifted, **hp)))
    return Drawing("rotated boxes", [
        Panel("angle between the boxes (degrees)", "loss",
              {k: (np.degrees(angle), v[0]) for k, v in curves.items()}),
        Panel("shift along the long side", "loss", {k: (shift, v[1]) for k, v in curves.items()}),
    ], note="(cx, cy, w, h, θ) boxes of 4×2")


def probe_bins(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(logits over R + 1 bins, continuous target in [0, R]): the loss against the target."""
    _, jnp = _jax()
    if len(arrays) != 2:
        raise ProbeError("takes other than two arrays")
    bins = 5
    y = np.linspace(0.0, bins - 1.0, G)
    centres = np.arange(bins)
    dists = {"peaked at bin 2": np.exp(-2.0 * (centres - 2.0) ** 2),
             "split between bins 1 and 3": np.isin(centres, (1, 3)) + 0.02,
             "uniform": np.ones(bins)}
    curves = {}
    for label, p in dists.items():
        logits = jnp.asarray(np.broadcast_to(np.log(p / p.sum()), (G, bins)), jnp.float32)
        values = _none(fn, logits, jnp.asarray(y, jnp.float32))
        curves[label] = (y, _finite(values, G))
    return Drawing("bins", [Panel(f"target position in [0, {bins - 1}] (bins)", "loss", curves)],
                   note=f"fixed distributions over {bins} bins")


def probe_class_counts(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(logits, labels, per-class counts or priors): a frequent and a rare true class."""
    _, jnp = _jax()
    if len(arrays) != 3 or not any(w in arrays[2] for w in ("count", "prior", "freq")):
        raise ProbeError("takes no (logits, labels, class counts or priors) triple")
    counts = np.array([1000.0, 100.0, 10.0])
    stats = counts / counts.sum() if "count" not in arrays[2] else counts
    # a large default scale means cosine logits: sweep them in [-1, 1]
    scale = _keyword_defaults(fn).get("scale")
    span = 1.0 if isinstance(scale, (int, float)) and scale > 5 else 6.0
    x = np.linspace(-span, span, G)
    curves = {}
    for label, c in (("frequent class (n = 1000)", 0), ("rare class (n = 10)", 2)):
        def build(z, c=c):
            logits = jnp.zeros((G, 3), jnp.float32).at[:, c].set(z)
            return logits, jnp.full(G, c, jnp.int32), jnp.asarray(stats, jnp.float32)
        curves[label] = _elementwise(fn, x, build)()
    what = "counts" if "count" in arrays[2] else "priors"
    return Drawing("class counts", _value_grad_panels(
        curves, x, "logit of the true class (others 0)"),
        note=f"3 classes, {what} from counts 1000 : 100 : 10")


def probe_keypoints(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(predictions, targets, visibility, areas): every keypoint d pixels off, for 3 areas."""
    _, jnp = _jax()
    if len(arrays) != 4 or "area" not in arrays[3]:
        raise ProbeError("takes no (predictions, targets, visibility, areas) quadruple")
    k = 17
    d = np.linspace(0.0, 40.0, 81)
    targets = np.zeros((len(d), k, 2))
    preds = targets + np.stack([d, 0 * d], -1)[:, None, :]
    vis = jnp.ones((len(d), k), jnp.float32)
    curves = {}
    for side in (32, 64, 128):
        areas = jnp.full(len(d), float(side * side), jnp.float32)
        values = _none(fn, jnp.asarray(preds, jnp.float32), jnp.asarray(targets, jnp.float32),
                       vis, areas)
        curves[f"area {side}²"] = (d, _finite(values, len(d)))
    return Drawing("keypoints", [Panel("distance of every keypoint (pixels)", "loss", curves)],
                   note=f"{k} keypoints")


def probe_coordinate_bins(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """(x_logits, y_logits, x_targets, y_targets): the x peak offset from the target's."""
    _, jnp = _jax()
    if len(arrays) != 4:
        raise ProbeError("takes other than four arrays")
    width, centre = 48, 24.0
    offset = np.linspace(-12.0, 12.0, 49)
    b = np.arange(width)
    bump = lambda c: np.exp(-((b - c) ** 2) / (2 * 2.0 ** 2))  # noqa: E731
    x_logits = np.stack([bump(centre + o) for o in offset])[:, None, :]
    target = np.broadcast_to(bump(centre), x_logits.shape)

    def curve(**hp):
        xs = jnp.asarray(x_logits, jnp.float32)
        t = jnp.asarray(target, jnp.float32)
        return (_finite(_none(fn, xs, t, xs * 0 + t, t, **hp), len(offset)),)

    curves = _hyper_curves(fn, curve)
    return Drawing("coordinate bins", [Panel(
        "offset of the predicted x peak (bins; y exact)", "loss",
        {k: (offset, v[0]) for k, v in curves.items()})],
        note=f"Gaussian bumps (σ = 2 bins) over {width} bins")


def _field(size: int, c: int) -> np.ndarray:
    """A smooth (size, size, c) map in [0.5, 1.5], a different pattern per channel."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.stack([1 + 0.5 * np.sin((5 + i) * xx + i) * np.cos((3 + i) * yy)
                     for i in range(c)], -1)


def probe_dense_map(fn: Callable[..., Any], arrays: list[str], family: str) -> Drawing:
    """Dense maps (flow, depth, displacement): a × target + b + σ noise, one sweep each."""
    _, jnp = _jax()
    if not 1 <= len(arrays) <= 2:
        raise ProbeError("takes other than one or two arrays")
    n, size = 25, 32
    sweeps = (("scale a of the map", np.geomspace(0.25, 4.0, n), True),
              ("offset b added to the map", np.linspace(-1.0, 1.0, n), False),
              ("standard deviation σ of added noise", np.linspace(0.0, 0.5, n), False))
    errors = []
    for c in (1, 2, 3):
        target = _field(size, c)
        noise = np.random.default_rng(0).standard_normal(target.shape)
        panels = []
        try:
            for i, (label, v, logx) in enumerate(sweeps):
                a = v if i == 0 else np.ones(n)
                b = v if i == 1 else np.zeros(n)
                s = v if i == 2 else np.zeros(n)
                pred = (a[:, None, None, None] * target + b[:, None, None, None]
                        + s[:, None, None, None] * noise)
                args = (jnp.asarray(pred, jnp.float32),
                        jnp.asarray(np.broadcast_to(target, pred.shape), jnp.float32))
                values = _per_item(fn, args[: len(arrays)], n)
                panels.append(Panel(label, "loss", {"default": (v, values)}, logx=logx))
        except Exception as error:
            errors.append(error)
            continue
        # an invariance shows as a flat line, not as float32 rounding blown up by autoscale
        top = max(np.abs(y).max() for p in panels for _, y in p.curves.values())
        for p in panels:
            x, y = p.curves["default"]
            if np.ptp(y) <= 1e-4 * top:
                p.curves["default"] = (x, np.full_like(y, y.mean()))
        what = "map" if len(arrays) == 1 else f"{arrays[0]} against {arrays[1]}"
        return Drawing("dense map", panels, note=f"{what}, {size}×{size}×{c}")
    raise errors[0] if all(isinstance(e, ProbeError) for e in errors) else next(
        e for e in errors if not isinstance(e, ProbeError))


PROBES: dict[str, list[Callable[..., Drawing]]] = {
    "regression": [probe_residual],
    "classification": [probe_binary_logit, probe_class_logit, probe_residual,
                       probe_class_counts],
    "segmentation": [probe_overlap],
    "detection": [probe_boxes, probe_residual, probe_rotated_boxes, probe_bins],
    "metric": [probe_labelled_embeddings, probe_two_views, probe_class_matrix, probe_pairs,
               probe_triplet],
    "image": [probe_residual, probe_image_noise],
    "keypoint": [probe_residual, probe_keypoints, probe_coordinate_bins],
    "geometry": [probe_image_noise, probe_residual, probe_dense_map],
}
FALLBACK = [probe_residual, probe_binary_logit, probe_class_logit, probe_labelled_embeddings,
            probe_two_views, probe_image_noise, probe_boxes, probe_rotated_boxes,
            probe_class_counts, probe_keypoints, probe_dense_map]


def probes_for(family: str) -> list[Callable[..., Drawing]]:
    first = PROBES.get(family, [])
    return first + [p for p in FALLBACK if p not in first]


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def draw(name: str) -> Result:
    """Tries the probes on the loss registered as ``name``; never raises."""
    from jaxloss import registry

    family = "custom"
    try:
        family = registry.family_of(name)
        fn = registry.get(name)
        arrays = _positional(fn)
    except Exception as error:  # a broken registration
        return Result(name, family, reason=f"cannot be looked up: {_short(error)}")
    errors: list[tuple[str, BaseException]] = []
    for probe in probes_for(family):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                drawing = probe(fn, arrays, family)
            return Result(name, family, drawing=drawing, tried=[p for p, _ in errors])
        except Exception as error:
            errors.append((probe.__name__.removeprefix("probe_"), error))
    signature = f"{name}({', '.join(arrays)}, ...)"
    applicable = [(p, e) for p, e in errors if not isinstance(e, ProbeError)]
    p, e = (applicable or errors)[0] if errors else ("none", ProbeError("no probe"))
    kinds = ", ".join(p for p, _ in errors)
    reason = (f"{signature}: no probe builds its {len(arrays)} positional array(s) "
              f"(tried {kinds}); the {p} probe got: {_short(e)}")
    return Result(name, family, reason=reason, tried=[p for p, _ in errors])


def render(result: Result, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = result.drawing.panels
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.7), dpi=72,
                             squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for label, (x, y) in panel.curves.items():
            ax.plot(x, y, label=label, lw=1.6)
        if panel.reference is not None:
            label, x, y = panel.reference
            ax.plot(x, y, "k--", lw=1.0, label=label)
        if panel.logx:
            ax.set_xscale("log")
            lo, hi = min(x.min() for x, _ in panel.curves.values()), max(
                x.max() for x, _ in panel.curves.values())
            ticks = [t for t in (0.2, 0.25, 0.5, 1, 2, 4, 5) if lo <= t <= hi]
            ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ys = np.concatenate([y for _, y in panel.curves.values()])
        if np.ptp(ys) == 0:  # a constant: centre it instead of a ±5 % band around nothing
            ax.set_ylim(min(0.0, ys[0]) - 0.05, max(0.0, ys[0]) * 1.5 + 0.05)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, frameon=False)
    fig.suptitle(result.name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    with contextlib.suppress(Exception):  # a 48-colour palette: a third of the size
        from PIL import Image

        with Image.open(path) as image:
            small = image.convert("RGB").quantize(48)
        small.save(path, optimize=True)


def _cache_key(name: str) -> str:
    from jaxloss import registry

    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes())
    digest.update(name.encode())
    try:  # the loss's module and its package's other modules (shared kernels, _common.py)
        fn = registry.get(name)
        source = pathlib.Path(inspect.getsourcefile(inspect.unwrap(fn)) or "")
        for path in sorted(source.parent.glob("*.py")) if source.is_file() else []:
            digest.update(path.name.encode() + path.read_bytes())
    except Exception:
        digest.update(b"unknown")
    return digest.hexdigest()[:16]


def _qualified(name: str) -> str:
    try:
        import apigen

        return apigen._qualified_loss(name)
    except Exception:
        return f"jaxloss.{name}"


def build(outdir: pathlib.Path, caches: list[pathlib.Path] = (),
          write_cache: pathlib.Path | None = None,
          names: list[str] | None = None) -> list[Result]:
    """Draws every registered loss (or ``names``) into ``outdir`` with its ``index.rst``.

    A figure found in one of ``caches`` under its key (this script and the
    loss's source file) is reused; a new one is stored in ``write_cache``.
    """
    from jaxloss import registry

    outdir = pathlib.Path(outdir)
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    caches = [pathlib.Path(c) for c in caches]
    if write_cache is not None:
        write_cache = pathlib.Path(write_cache)
        write_cache.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for name in names if names is not None else registry.names():
        key = _cache_key(name)
        hit = next((c / f"{name}-{key}.json" for c in caches
                    if (c / f"{name}-{key}.json").exists()), None)
        if hit is not None:
            try:
                results.append(_from_cache(hit, name, outdir))
                continue
            except Exception:  # a damaged entry: draw again
                pass
        result = draw(name)
        if result.drawing is not None:
            try:
                render(result, outdir / f"{name}.png")
            except Exception as error:  # a drawing that matplotlib cannot render
                reason = f"could not be rendered: {_short(error)}"
                result = Result(name, result.family, reason=reason)
        if write_cache is not None:
            png = f"{name}-{key}.png" if result.drawing is not None else ""
            if png:
                shutil.copy(outdir / f"{name}.png", write_cache / png)
            (write_cache / f"{name}-{key}.json").write_text(json.dumps({
                "family": result.family, "reason": result.reason, "png": png,
                "probe": result.drawing.probe if result.drawing else "",
                "note": result.drawing.note if result.drawing else ""}, indent=0) + "\n")
        results.append(result)
    (outdir / "index.rst").write_text(_page(results))
    return results


def _from_cache(entry: pathlib.Path, name: str, outdir: pathlib.Path) -> Result:
    record = json.loads(entry.read_text())
    result = Result(name, record["family"], reason=record["reason"])
    if record["png"]:
        shutil.copy(entry.parent / record["png"], outdir / f"{name}.png")
        result.drawing = Drawing(record["probe"], [], record["note"])
    return result


def _page(results: list[Result]) -> str:
    from jaxloss import registry

    lines = ["Gallery", "=======", "",
             "Every registered loss, drawn by ``docs/gallery.py`` from the registry at each "
             "build: elementwise and per-sample losses as value and gradient against the "
             "residual or the logit (the first numeric hyperparameter at half, once and twice "
             "its default), overlap losses against the IoU of a sliding square, box losses "
             "against a box's shift and scale, metric losses against the angle between "
             "embeddings that should agree, image losses against added noise, rotated boxes "
             "against a box's angle and shift, long-tail losses against the true-class "
             "logit of a frequent and a rare class, keypoint losses against the keypoints' "
             "distance, dense maps (flow, depth, displacement) against a scale, an offset "
             "and noise. The dashed line is ``1 − IoU`` where it applies.", ""]
    drawn = [r for r in results if r.drawing is not None]
    skipped = [r for r in results if r.drawing is None]
    extra = sorted({r.family for r in results} - set(registry.FAMILIES))
    for family in (*registry.FAMILIES, *extra):
        members = [r for r in drawn if r.family == family]
        if not members:
            continue
        title = family.capitalize()
        lines += [title, "-" * len(title), ""]
        for r in members:
            note = f" ({r.drawing.note})" if r.drawing.note else ""
            lines += [f".. figure:: {r.name}.png", f"   :alt: {r.name}", "",
                      f"   :func:`{_qualified(r.name)}`: {r.drawing.probe} probe{note}.", ""]
    lines += ["Not drawn", "---------", ""]
    if not skipped:
        lines += ["Every registered loss has a figure.", ""]
    else:
        lines += ["These registered losses have no figure; the reason is generated from "
                  "their signature and the probes' errors.", "",
                  ".. list-table::", "   :header-rows: 1", "   :widths: 25 75", "",
                  "   * - loss", "     - reason"]
        for r in skipped:
            reason = r.reason.replace("`", "'").replace("*", "\\*").replace("|", "\\|")
            lines += [f"   * - :func:`{_qualified(r.name)}`", f"     - {reason}"]
        lines.append("")
    return "\n".join(lines) + "\n"


COMMITTED_CACHE = pathlib.Path(__file__).resolve().parent / "_gallery_cache"

if __name__ == "__main__":
    # python docs/gallery.py [OUTDIR]: draw everything into OUTDIR (default docs/gallery);
    # python docs/gallery.py --refresh: also rewrite the committed cache docs/_gallery_cache/,
    # so that builds (and CI) reuse the figures instead of drawing them again.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    args = [a for a in sys.argv[1:] if a != "--refresh"]
    refresh = "--refresh" in sys.argv[1:]
    out = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent / "gallery")
    if refresh and COMMITTED_CACHE.exists():
        shutil.rmtree(COMMITTED_CACHE)
    for r in build(out, write_cache=COMMITTED_CACHE if refresh else None):
        print(f"{r.name:36s} {r.drawing.probe if r.drawing else 'NOT DRAWN: ' + r.reason}")
