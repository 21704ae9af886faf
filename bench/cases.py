"""The benchmark cases: one jaxloss loss, its optax and PyTorch equivalents, and input sizes.

Every implementation of a case computes the same scalar (the ``"mean"``
reduction) from the same inputs; ``bench/run.py`` checks that their values
agree before it reports any timing. Predictions are channels-last, which for
the 2-D ``(N, C)`` logits here is also PyTorch's layout, so no transposition
enters the timings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class Size:
    """One input size: a label for the tables and the predictions' shape."""

    label: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclasses.dataclass(frozen=True)
class Case:
    """A loss measured across implementations.

    Attributes:
      name: short case name (``--case`` filter).
      family: jaxloss registry family (``--family`` filter).
      title: human-readable description for the tables.
      jaxloss_name: the attribute of ``jaxloss`` that is measured.
      jaxloss_kwargs: hyperparameters passed to it.
      make: ``make(rng, shape) -> (predictions, targets)`` numpy arrays.
      optax: ``optax(predictions, targets) -> scalar`` on JAX arrays, or None.
      torch: ``torch(predictions, targets) -> scalar tensor``, or None.
      sizes: the sizes of a full run; ``quick_sizes`` those of ``--quick``.
      elementwise: an elementwise loss (the acceptance bar applies).
      notes: why an implementation is missing, or what it is exactly.
    """

    name: str
    family: str
    title: str
    jaxloss_name: str
    jaxloss_kwargs: dict[str, Any]
    make: Callable[[np.random.Generator, tuple[int, ...]], Arrays]
    optax: Callable[..., Any] | None
    torch: Callable[..., Any] | None
    sizes: tuple[Size, ...]
    quick_sizes: tuple[Size, ...]
    elementwise: bool
    notes: dict[str, str] = dataclasses.field(default_factory=dict)

    def jaxloss_fn(self) -> Callable[..., Any] | None:
        """The jaxloss loss with its hyperparameters bound, or None if it does not exist."""
        import jaxloss

        fn = getattr(jaxloss, self.jaxloss_name, None)
        if fn is None:
            return None
        kwargs = dict(self.jaxloss_kwargs)
        return lambda predictions, targets: fn(predictions, targets, **kwargs)


# ----------------------------------------------------------------------------- inputs

ELEMENTWISE_SIZES = (Size("1M", (16, 256, 256)), Size("16M", (256, 256, 256)))
ELEMENTWISE_QUICK = (Size("16K", (4, 64, 64)),)
CLASS_SIZES = (Size("65536x100", (65536, 100)), Size("4096x1000", (4096, 1000)))
CLASS_QUICK = (Size("512x10", (512, 10)),)
BOX_SIZES = (Size("1M boxes", (1_000_000, 4)),)
BOX_QUICK = (Size("4096 boxes", (4096, 4)),)


def _regression_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    # Residuals of scale ~2 reach both branches of Huber's delta = 1.
    predictions = rng.normal(0.0, 1.5, shape).astype(np.float32)
    targets = rng.normal(0.0, 1.5, shape).astype(np.float32)
    return predictions, targets


def _binary_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    logits = rng.normal(0.0, 3.0, shape).astype(np.float32)
    targets = (rng.random(shape) < 0.5).astype(np.float32)
    return logits, targets


def _class_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    logits = rng.normal(0.0, 3.0, shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
    return logits, labels


def _box_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    # Matched xyxy pairs in [0, 1]: targets of every size and aspect ratio, predictions
    # jittered around them (centre shift ~0.3 of the size, log-size noise 0.3), so that
    # most pairs overlap, a few are disjoint, and both branches of every term are taken.
    n = shape[:-1]
    size = np.exp(rng.uniform(np.log(0.02), np.log(0.5), n + (2,)))
    center = rng.uniform(0.0, 1.0, n + (2,))
    shift = rng.normal(0.0, 0.3, n + (2,)) * size
    pred_size = size * np.exp(rng.normal(0.0, 0.3, n + (2,)))
    targets = np.concatenate([center - size / 2, center + size / 2], axis=-1)
    pred_center = center + shift
    predictions = np.concatenate([pred_center - pred_size / 2, pred_center + pred_size / 2],
                                 axis=-1)
    return predictions.astype(np.float32), targets.astype(np.float32)


# ----------------------------------------------------------------------------- optax


def _optax_mse(p: Any, t: Any) -> Any:
    import optax

    return optax.losses.squared_error(p, t).mean()


def _optax_huber(p: Any, t: Any) -> Any:
    import optax

    return optax.losses.huber_loss(p, t, delta=1.0).mean()


def _optax_bce(p: Any, t: Any) -> Any:
    import optax

    return optax.losses.sigmoid_binary_cross_entropy(p, t).mean()


def _optax_sigmoid_focal(p: Any, t: Any) -> Any:
    import optax

    return optax.losses.sigmoid_focal_loss(p, t, alpha=0.25, gamma=2.0).mean()


def _optax_ce(p: Any, t: Any) -> Any:
    import optax

    return optax.losses.softmax_cross_entropy_with_integer_labels(p, t).mean()


# ----------------------------------------------------------------------------- torch


def _torch_mse(p: Any, t: Any) -> Any:
    from torch.nn import functional

    return functional.mse_loss(p, t)


def _torch_huber(p: Any, t: Any) -> Any:
    from torch.nn import functional

    return functional.huber_loss(p, t, delta=1.0)


def _torch_bce(p: Any, t: Any) -> Any:
    from torch.nn import functional

    return functional.binary_cross_entropy_with_logits(p, t)


def _torch_sigmoid_focal(p: Any, t: Any) -> Any:
    import torch
    from torch.nn import functional

    # torchvision.ops.sigmoid_focal_loss(p, t, alpha=0.25, gamma=2, reduction="mean"),
    # operation for operation (torchvision does not import with the pinned torch).
    prob = torch.sigmoid(p)
    ce_loss = functional.binary_cross_entropy_with_logits(p, t, reduction="none")
    p_t = prob * t + (1 - prob) * (1 - t)
    loss = ce_loss * ((1 - p_t) ** 2.0)
    alpha_t = 0.25 * t + (1 - 0.25) * (1 - t)
    return (alpha_t * loss).mean()


def _torch_ce(p: Any, t: Any) -> Any:
    from torch.nn import functional

    return functional.cross_entropy(p, t)


def _torch_focal(p: Any, t: Any) -> Any:
    import kornia.losses

    # kornia's "mean" divides by N * C; jaxloss's focal "mean" is the mean over positions
    # of the class-summed loss (jaxloss's convention), i.e. kornia's "sum" divided by N.
    return kornia.losses.focal_loss(p, t, alpha=None, gamma=2.0, reduction="sum") / t.numel()


def _torch_giou(p: Any, t: Any) -> Any:
    from bench import torchvision_ops

    return torchvision_ops.generalized_box_iou_loss(p, t)


def _torch_ciou(p: Any, t: Any) -> Any:
    from bench import torchvision_ops

    return torchvision_ops.complete_box_iou_loss(p, t)


CASES: tuple[Case, ...] = (
    Case(
        name="mse",
        family="regression",
        title="MSE",
        jaxloss_name="mse_loss",
        jaxloss_kwargs={},
        make=_regression_inputs,
        optax=_optax_mse,
        torch=_torch_mse,
        sizes=ELEMENTWISE_SIZES,
        quick_sizes=ELEMENTWISE_QUICK,
        elementwise=True,
        notes={"optax": "optax.losses.squared_error(p, t).mean()",
               "torch": "torch.nn.functional.mse_loss"},
    ),
    Case(
        name="huber",
        family="regression",
        title="Huber (delta=1)",
        jaxloss_name="huber_loss",
        jaxloss_kwargs={"delta": 1.0},
        make=_regression_inputs,
        optax=_optax_huber,
        torch=_torch_huber,
        sizes=ELEMENTWISE_SIZES,
        quick_sizes=ELEMENTWISE_QUICK,
        elementwise=True,
        notes={"optax": "optax.losses.huber_loss(p, t, delta=1.0).mean()",
               "torch": "torch.nn.functional.huber_loss(delta=1.0)"},
    ),
    Case(
        name="bce",
        family="classification",
        title="Binary cross-entropy from logits",
        jaxloss_name="binary_cross_entropy_loss",
        jaxloss_kwargs={},
        make=_binary_inputs,
        optax=_optax_bce,
        torch=_torch_bce,
        sizes=ELEMENTWISE_SIZES,
        quick_sizes=ELEMENTWISE_QUICK,
        elementwise=True,
        notes={"optax": "optax.losses.sigmoid_binary_cross_entropy(logits, t).mean()",
               "torch": "torch.nn.functional.binary_cross_entropy_with_logits"},
    ),
    Case(
        name="sigmoid_focal",
        family="classification",
        title="Sigmoid focal (gamma=2, alpha=0.25)",
        jaxloss_name="sigmoid_focal_loss",
        jaxloss_kwargs={"gamma": 2.0, "alpha": 0.25},
        make=_binary_inputs,
        optax=_optax_sigmoid_focal,
        torch=_torch_sigmoid_focal,
        sizes=ELEMENTWISE_SIZES,
        quick_sizes=ELEMENTWISE_QUICK,
        elementwise=True,
        notes={"optax": "optax.losses.sigmoid_focal_loss(logits, t, alpha=0.25, gamma=2.0).mean()",
               "torch": "torchvision.ops.sigmoid_focal_loss(alpha=0.25, gamma=2, "
                        "reduction='mean'), written in torch in bench/cases.py"},
    ),
    Case(
        name="cross_entropy",
        family="classification",
        title="Cross-entropy, integer labels",
        jaxloss_name="cross_entropy_loss",
        jaxloss_kwargs={},
        make=_class_inputs,
        optax=_optax_ce,
        torch=_torch_ce,
        sizes=CLASS_SIZES,
        quick_sizes=CLASS_QUICK,
        elementwise=False,
        notes={"optax": "optax.losses.softmax_cross_entropy_with_integer_labels(...).mean()",
               "torch": "torch.nn.functional.cross_entropy"},
    ),
    Case(
        name="focal",
        family="classification",
        title="Focal (softmax, gamma=2)",
        jaxloss_name="focal_loss",
        jaxloss_kwargs={"gamma": 2.0},
        make=_class_inputs,
        optax=None,
        torch=_torch_focal,
        sizes=CLASS_SIZES,
        quick_sizes=CLASS_QUICK,
        elementwise=False,
        notes={"optax": "n/a: optax has only sigmoid_focal_loss, no softmax focal loss",
               "torch": "kornia.losses.focal_loss(alpha=None, gamma=2.0, reduction='sum') / N"},
    ),
    Case(
        name="giou",
        family="detection",
        title="GIoU loss (matched xyxy boxes)",
        jaxloss_name="giou_loss",
        jaxloss_kwargs={},
        make=_box_inputs,
        optax=None,
        torch=_torch_giou,
        sizes=BOX_SIZES,
        quick_sizes=BOX_QUICK,
        elementwise=False,
        notes={"optax": "n/a: optax has no box losses",
               "torch": "torchvision.ops.generalized_box_iou_loss(reduction='mean'), written "
                        "in torch in bench/torchvision_ops.py"},
    ),
    Case(
        name="ciou",
        family="detection",
        title="CIoU loss (matched xyxy boxes)",
        jaxloss_name="ciou_loss",
        jaxloss_kwargs={},
        make=_box_inputs,
        optax=None,
        torch=_torch_ciou,
        sizes=BOX_SIZES,
        quick_sizes=BOX_QUICK,
        elementwise=False,
        notes={"optax": "n/a: optax has no box losses",
               "torch": "torchvision.ops.complete_box_iou_loss(reduction='mean'), written "
                        "in torch in bench/torchvision_ops.py"},
    ),
)


def select(family: str | None = None, case: str | None = None) -> list[Case]:
    """The cases matching the ``--family`` and ``--case`` filters (comma-separated lists)."""
    families = None if family is None else {f.strip() for f in family.split(",") if f.strip()}
    names = None if case is None else {c.strip() for c in case.split(",") if c.strip()}
    known_families = {c.family for c in CASES}
    known_names = {c.name for c in CASES}
    if families is not None and not families <= known_families:
        raise ValueError(f"unknown --family {sorted(families - known_families)}; "
                         f"choose from {sorted(known_families)}")
    if names is not None and not names <= known_names:
        raise ValueError(f"unknown --case {sorted(names - known_names)}; "
                         f"choose from {sorted(known_names)}")
    return [c for c in CASES
            if (families is None or c.family in families) and (names is None or c.name in names)]
