"""Quickstart: a Flax NNX CNN on class-imbalanced digits, trained with three jaxloss losses.

The data is scikit-learn's 8x8 handwritten digits (shipped inside the package,
no download). The training split keeps every example of classes 0-4 but only
10% of classes 5-9, the kind of imbalance a real vision data set has; the
held-out test split stays balanced. The same CNN, from the same
initialisation and on the same batches, is trained three times:

1. ``jaxloss.cross_entropy_loss`` -- plain cross-entropy;
2. ``jaxloss.cross_entropy_loss(class_weights=...)`` -- each class weighted by
   its inverse frequency in the training split;
3. ``jaxloss.focal_loss(gamma=2)`` -- down-weights the easy, confident
   examples (Lin et al. 2017).

At the end it prints the per-class recall on the test split for each loss
and saves the three training-loss curves (and the recalls) as a PNG.

Run it with::

    python examples/quickstart.py                 # ~1 minute on 2 CPU cores
    python examples/quickstart.py --smoke         # 3 steps: checks that it runs end to end
    python examples/quickstart.py --steps 300 --batch-size 32 --seed 1 --out /tmp/qs
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common  # examples/_common.py: what the examples share
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_CLASSES = 10
MINORITY = (5, 6, 7, 8, 9)  # classes cut to --minority-fraction of the training split
SMOKE = {"steps": 3, "batch_size": 16}  # --smoke: the tests' quick run

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def load_data(seed: int, minority_fraction: float) -> dict[str, np.ndarray]:
    """Digits as float32 NHWC images in [0, 1], split 60/40 stratified, then made imbalanced."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    labels = digits.target.astype(np.int32)  # [1797]
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.4, stratify=labels, random_state=seed
    )
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(NUM_CLASSES):
        index = np.flatnonzero(y_train == c)
        if c in MINORITY:
            count = max(2, round(minority_fraction * index.size))
            index = rng.choice(index, size=count, replace=False)
        keep.append(index)
    keep = np.sort(np.concatenate(keep))
    return {"x_train": x_train[keep], "y_train": y_train[keep],
            "x_test": x_test, "y_test": y_test}


def inverse_frequency_weights(labels: np.ndarray) -> np.ndarray:
    """``w_c = N / (C * n_c)``: 1 for every class of a balanced split (scikit-learn's
    "balanced" class weights)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    return (labels.size / (NUM_CLASSES * np.maximum(counts, 1.0))).astype(np.float32)


# ----------------------------------------------------------------------------- model


class CNN(nnx.Module):
    """Two 3x3 convolutions, 2x2 average pooling, two dense layers: ~40k parameters."""

    def __init__(self, num_classes: int = NUM_CLASSES, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, 16, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), rngs=rngs)
        self.dense1 = nnx.Linear(4 * 4 * 32, 64, rngs=rngs)
        self.dense2 = nnx.Linear(64, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [N, 8, 8, 1] -> [N, classes]
        x = nnx.relu(self.conv1(x))  # [N, 8, 8, 16]
        x = nnx.relu(self.conv2(x))  # [N, 8, 8, 32]
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))  # [N, 4, 4, 32]
        x = x.reshape(x.shape[0], -1)  # [N, 512]
        x = nnx.relu(self.dense1(x))
        return self.dense2(x)  # logits, class axis last


LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@nnx.jit
def predict(model: CNN, images: jax.Array) -> jax.Array:
    return jnp.argmax(model(images), axis=-1)


def train(name: str, loss_fn: LossFn, initial: CNN, data: dict[str, np.ndarray], *,
          steps: int, batch_size: int, seed: int,
          learning_rate: float) -> tuple[np.ndarray, CNN]:
    """Trains a copy of ``initial`` (the same for every loss, as are the batches); returns its
    loss curve and the trained model."""
    model = nnx.clone(initial)
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    step_fn = common.make_train_step(loss_fn)
    x_train, y_train = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])
    index_stream = common.batches(np.random.default_rng(seed), len(data["y_train"]), batch_size)
    losses = []
    with common.progress(range(steps), f"{name:>14}") as bar:
        for step in bar:
            index = jnp.asarray(next(index_stream))
            losses.append(step_fn(model, optimizer, x_train[index], y_train[index]))
            if step % 50 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{float(losses[-1]):.4f}")
    return np.asarray(jax.device_get(losses), dtype=np.float64), model


def per_class_recall(model: CNN, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    predicted = np.asarray(predict(model, jnp.asarray(images)))
    return np.array([np.mean(predicted[labels == c] == c) for c in range(NUM_CLASSES)])


# ----------------------------------------------------------------------------- report


def plot(curves: dict[str, np.ndarray], recalls: dict[str, np.ndarray], path: Path,
         minority_fraction: float) -> None:
    plt = common.pyplot()
    fig, (ax_loss, ax_recall) = plt.subplots(1, 2, figsize=(12, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, curve), color in zip(curves.items(), colors, strict=False):
        common.plot_curve(ax_loss, np.arange(1, curve.size + 1), curve, color=color, label=name)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (log scale; faint: per batch, solid: smoothed)")
    ax_loss.set_title("Training loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3, which="both")

    width = 0.8 / max(1, len(recalls))
    classes = np.arange(NUM_CLASSES)
    ax_recall.axvspan(min(MINORITY) - 0.5, max(MINORITY) + 0.5, color="0.9", zorder=0,
                      label=f"minority ({minority_fraction:.0%} kept)")
    for i, ((name, recall), color) in enumerate(zip(recalls.items(), colors, strict=False)):
        ax_recall.bar(classes + (i - (len(recalls) - 1) / 2) * width, recall, width,
                      color=color, label=f"{name} (mean {recall.mean():.3f})", zorder=2)
    ax_recall.set_xticks(classes)
    ax_recall.set_xlabel("class")
    ax_recall.set_ylabel("recall on the held-out test split")
    lowest = min(float(r.min()) for r in recalls.values())
    ax_recall.set_ylim(min(0.5, np.floor(lowest * 10) / 10), 1.02)
    ax_recall.set_title("Per-class test recall")
    ax_recall.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8,
                     frameon=False)
    common.save_figure(fig, path, dpi=120)


def report(recalls: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> None:
    """The per-class recall table, with the minority mean and the balanced accuracy."""
    train_counts = np.bincount(data["y_train"], minlength=NUM_CLASSES)
    test_counts = np.bincount(data["y_test"], minlength=NUM_CLASSES)
    minority = np.array(MINORITY)
    rows: list[tuple[str, list[float]] | None] = []
    for c in range(NUM_CLASSES):
        mark = "*" if c in MINORITY else " "
        rows.append((f"{c:>4}{mark}  {train_counts[c]:>5}  {test_counts[c]:>4}",
                     [r[c] for r in recalls.values()]))
    rows.append(None)
    rows.append(("minority mean recall", [r[minority].mean() for r in recalls.values()]))
    rows.append(("balanced accuracy", [r.mean() for r in recalls.values()]))
    common.print_table(
        "Per-class recall on the held-out test split (* = minority class in training):",
        f"{'class':<5}  {'train':>5}  {'test':>4}", list(recalls), rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_training_flags(parser, steps=600, batch_size=64, learning_rate=3e-3,
                              steps_help="training steps per loss", learning_rate_help=None)
    parser.add_argument("--minority-fraction", type=float, default=0.1,
                        help="fraction of classes 5-9 kept in the training split")
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="quickstart_losses.png",
                             positive=("steps", "batch_size"))
    if not 0.0 < args.minority_fraction <= 1.0:
        parser.error("--minority-fraction must lie in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the per-class test recalls and training-loss curves of every
    loss and the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = load_data(args.seed, args.minority_fraction)
    class_weights = jnp.asarray(inverse_frequency_weights(data["y_train"]))
    print(f"digits: {len(data['y_train'])} training images (classes {MINORITY[0]}-{MINORITY[-1]} "
          f"cut to {args.minority_fraction:.0%}), {len(data['y_test'])} test images; "
          "inverse-frequency class weights ["
          + ", ".join(f"{w:.2f}" for w in np.asarray(class_weights)) + "]")

    losses: dict[str, LossFn] = {
        "cross-entropy": lambda logits, labels: jaxloss.cross_entropy_loss(logits, labels),
        "weighted CE": lambda logits, labels: jaxloss.cross_entropy_loss(
            logits, labels, class_weights=class_weights),
        "focal (γ=2)": lambda logits, labels: jaxloss.focal_loss(logits, labels, gamma=2.0),
    }
    initial = common.init_model(lambda: CNN(rngs=nnx.Rngs(args.seed)))
    curves, recalls = {}, {}
    for name, loss_fn in losses.items():
        curve, model = train(name, loss_fn, initial, data, steps=args.steps,
                             batch_size=args.batch_size, seed=args.seed,
                             learning_rate=args.learning_rate)
        curves[name] = curve
        recalls[name] = per_class_recall(model, data["x_test"], data["y_test"])

    report(recalls, data)
    path = args.out / "quickstart_losses.png"
    plot(curves, recalls, path, args.minority_fraction)
    common.print_done(start, {"the loss curves": path})
    return {"recalls": recalls, "losses": curves, "png": path}


if __name__ == "__main__":
    main()
