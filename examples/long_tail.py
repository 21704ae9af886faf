"""Long-tailed digits: a Flax NNX CNN trained with five jaxloss long-tail losses.

The data is scikit-learn's 8x8 handwritten digits (shipped inside the package,
no download). A balanced test split keeps ``--test-per-class`` images of every
digit; the training split is made long-tailed: digit ``c`` keeps
``round(n_max * ratio ** (-c / 9))`` images, so digit 0 has ``n_max`` (100)
and digit 9 a hundredth of that (an imbalance ratio of ``--ratio`` = 100).
The same CNN (with a cosine classifier: logits are 16 times the cosine between
features and class vectors), from the same initialisation and on the same
batches, is trained five times:

1. ``jaxloss.cross_entropy_loss`` -- plain cross-entropy, the baseline;
2. ``jaxloss.cross_entropy_loss(class_weights=jaxloss.class_balanced_weights(
   counts))`` -- class-balanced weights from the effective number of samples
   (Cui et al. 2019);
3. ``jaxloss.ldam_loss`` with deferred re-weighting (LDAM-DRW, Cao et al.
   2019): label-distribution-aware margins, and the class-balanced weights
   switched on for the last third of the steps;
4. ``jaxloss.logit_adjusted_loss`` -- the cross-entropy of the logits plus
   the log class priors (Menon et al. 2021; the balanced softmax at tau = 1):
   the plain argmax at test time is then the balanced classifier;
5. ``jaxloss.seesaw_loss`` -- frequent classes stop penalising rare ones
   unless the rare class wins (Wang et al. 2021).

It prints, for each loss, the balanced accuracy (the mean of the per-class
recalls) and the mean recall of the three rarest digits on the balanced test
split, and saves the per-class recalls as a PNG. In our full runs
class-balanced CE, logit adjustment and seesaw beat cross-entropy by 0.02-0.03
in balanced accuracy and by 0.05-0.08 in the rare digits' recall; LDAM-DRW
does not (its margins cannot make one to three images of a digit generalise).

Run it with::

    python examples/long_tail.py              # ~1 minute on 2 CPU cores
    python examples/long_tail.py --smoke      # the tests' short run
    python examples/long_tail.py --steps 2000 --seed 1 --out /tmp/lt
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
from flax import nnx
from sklearn.datasets import load_digits

NUM_CLASSES = 10
RAREST = (7, 8, 9)  # the three smallest classes of the training split
SCALE = 16.0  # cosine classifier: logits = SCALE * cosine (LDAM's scale)
SMOKE = {"steps": 100, "width": 4, "batch_size": 32}  # --smoke: the tests' quick run

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def long_tail_counts(n_max: int, ratio: float) -> np.ndarray:
    """Training images per digit: ``n_max * ratio ** (-c / 9)``, rounded, at least 1."""
    c = np.arange(NUM_CLASSES)
    return np.maximum(1, np.round(n_max * ratio ** (-c / (NUM_CLASSES - 1)))).astype(np.int64)


def load_data(seed: int, *, n_max: int, ratio: float, test_per_class: int
              ) -> dict[str, np.ndarray]:
    """Digits as float32 NHWC images in [0, 1]: a balanced test split and a long-tailed
    training split (disjoint)."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    labels = digits.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    counts = long_tail_counts(n_max, ratio)
    train, test = [], []
    for c in range(NUM_CLASSES):
        index = rng.permutation(np.flatnonzero(labels == c))
        test.append(index[:test_per_class])
        train.append(index[test_per_class:test_per_class + counts[c]])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    return {"x_train": images[train], "y_train": labels[train],
            "x_test": images[test], "y_test": labels[test]}


# ----------------------------------------------------------------------------- model


class CNN(nnx.Module):
    """Two 3x3 convolutions, 2x2 average pooling, a dense layer and a cosine classifier: the
    cosines between the normalised features and the normalised class vectors (the
    normalised last layer that LDAM's margins are made for; every loss gets the same
    network, the others read the cosines times ``SCALE`` as their logits)."""

    def __init__(self, width: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, width, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(3, 3), rngs=rngs)
        self.dense = nnx.Linear(4 * 4 * 2 * width, 64, rngs=rngs)
        self.head = nnx.Linear(64, NUM_CLASSES, use_bias=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [N, 8, 8, 1] -> [N, classes]
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))  # [N, 4, 4, 2w]
        x = nnx.relu(self.dense(x.reshape(x.shape[0], -1)))  # [N, 64]
        kernel = self.head.kernel[...]  # [64, classes]
        x = x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)
        kernel = kernel / jnp.sqrt(jnp.sum(kernel * kernel, axis=0, keepdims=True) + 1e-12)
        return x @ kernel  # cosines in [-1, 1]


@nnx.jit
def predict(model: CNN, images: jax.Array) -> jax.Array:
    return jnp.argmax(model(images), axis=-1)


def per_class_recall(model: CNN, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    predicted = np.asarray(predict(model, jnp.asarray(images)))
    return np.array([np.mean(predicted[labels == c] == c) for c in range(NUM_CLASSES)])


# ----------------------------------------------------------------------------- losses

# Each loss takes the cosines and (labels, class_weights); the weights are the DRW
# schedule's (ones, then the class-balanced weights), which only LDAM-DRW reads.
LossFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def make_losses(counts: np.ndarray) -> dict[str, LossFn]:
    counts = jnp.asarray(counts, jnp.float32)
    balanced = jaxloss.class_balanced_weights(counts, beta=0.9999)
    priors = counts / jnp.sum(counts)
    return {
        "cross-entropy": lambda c, y, w: jaxloss.cross_entropy_loss(SCALE * c, y),
        "class-balanced CE": lambda c, y, w: jaxloss.cross_entropy_loss(
            SCALE * c, y, class_weights=balanced),
        "LDAM-DRW": lambda c, y, w: jaxloss.ldam_loss(c, y, counts, max_margin=0.5,
                                                      scale=SCALE, class_weights=w),
        "logit adjustment": lambda c, y, w: jaxloss.logit_adjusted_loss(SCALE * c, y, priors,
                                                                        tau=1.0),
        "seesaw": lambda c, y, w: jaxloss.seesaw_loss(SCALE * c, y, counts, p=0.8, q=2.0),
    }


def train_all(losses: dict[str, LossFn], initial: CNN, data: dict[str, np.ndarray],
              schedule: list[np.ndarray], drw_weights: np.ndarray, *, drw_start: int,
              learning_rate: float) -> tuple[dict[str, np.ndarray], dict[str, CNN]]:
    """Trains a copy of ``initial`` per loss on the batches of ``schedule``; returns the loss
    curves and the trained models. One jitted step serves every loss (``lax.switch`` on
    the loss's index), so the network's training step compiles once."""
    branches = list(losses.values())

    def loss_fn(cosines: jax.Array, targets: tuple[jax.Array, ...]) -> jax.Array:
        labels, weights, method = targets
        return jax.lax.switch(method, branches, cosines, labels, weights)

    step_fn = common.make_train_step(loss_fn)
    x_train, y_train = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])
    ones, deferred = jnp.ones(NUM_CLASSES, jnp.float32), jnp.asarray(drw_weights)
    curves, models = {}, {}
    for method, name in enumerate(losses):
        run = common.Run.adam(name, initial, loss_fn, learning_rate=learning_rate,
                              steps=len(schedule))
        with common.progress(range(len(schedule)), f"{name:>17}") as bar:
            for step in bar:
                index = jnp.asarray(schedule[step])
                weights = deferred if step >= drw_start else ones
                run.losses.append(step_fn(run.model, run.optimizer, x_train[index],
                                          (y_train[index], weights, jnp.int32(method))))
                if step % 100 == 0 or step == len(schedule) - 1:
                    bar.set_postfix(loss=f"{float(run.losses[-1]):.4f}")
        curves[name] = np.asarray(jax.device_get(run.losses), dtype=np.float64)
        models[name] = run.model
    return curves, models


# ----------------------------------------------------------------------------- report


def plot(recalls: dict[str, np.ndarray], counts: np.ndarray, path: Path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(12, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / len(recalls)
    classes = np.arange(NUM_CLASSES)
    for i, ((name, recall), color) in enumerate(zip(recalls.items(), colors, strict=False)):
        ax.bar(classes + (i - (len(recalls) - 1) / 2) * width, recall, width, color=color,
               label=f"{name} (balanced accuracy {recall.mean():.3f})")
    ax.set_xticks(classes, [f"{c}\n({n} train)" for c, n in zip(classes, counts, strict=True)])
    ax.set_xlabel("digit (training images)")
    ax.set_ylabel("recall on the balanced test split")
    ax.set_ylim(0, 1.05)
    ax.set_title("Per-class test recall, long-tailed training (imbalance ratio "
                 f"{counts.max() / counts.min():.0f})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8,
              frameon=False)
    ax.grid(alpha=0.3, axis="y")
    common.save_figure(fig, path, dpi=120)


def report(recalls: dict[str, np.ndarray]) -> None:
    baseline = recalls["cross-entropy"].mean()
    rows = [(name, [r.mean(), r[list(RAREST)].mean(), r.mean() - baseline])
            for name, r in recalls.items()]
    common.print_table(
        "Balanced test split: balanced accuracy (mean per-class recall), mean recall of the "
        f"rarest digits {RAREST}, and the gain in balanced accuracy over cross-entropy:",
        "loss", ["balanced acc", "rare-3 recall", "vs CE"], rows,
        formats=[".3f", ".3f", "+.3f"])
    best = max(recalls, key=lambda n: recalls[n].mean())
    print(f"best balanced accuracy: {best}; "
          f"{sum(r.mean() > baseline for r in recalls.values())} of {len(recalls) - 1} "
          "long-tail losses beat plain cross-entropy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_training_flags(parser, steps=400, batch_size=64, learning_rate=3e-3,
                              steps_help="training steps per loss", learning_rate_help=None)
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--n-max", type=int, default=100, help="training images of digit 0")
    parser.add_argument("--ratio", type=float, default=100.0, help="imbalance ratio")
    parser.add_argument("--test-per-class", type=int, default=60)
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="long_tail_recall.png",
                             positive=("steps", "batch_size", "width"))
    if args.ratio < 1 or args.n_max + args.test_per_class > 170:
        parser.error("--ratio must be >= 1 and --n-max + --test-per-class at most 170")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the per-class test recalls and loss curves of every loss and
    the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = load_data(args.seed, n_max=args.n_max, ratio=args.ratio,
                     test_per_class=args.test_per_class)
    counts = np.bincount(data["y_train"], minlength=NUM_CLASSES)
    drw_weights = np.asarray(jaxloss.class_balanced_weights(counts, beta=0.9999))
    print(f"digits: {counts.sum()} long-tailed training images, per digit "
          f"{counts.tolist()} (ratio {counts.max() / counts.min():.0f}); "
          f"{len(data['y_test'])} balanced test images")
    schedule = common.batch_schedule(args.seed, len(data["y_train"]), args.batch_size,
                                     args.steps)
    drw_start = (2 * args.steps) // 3
    initial = common.init_model(lambda: CNN(args.width, rngs=nnx.Rngs(args.seed)))
    curves, models = train_all(make_losses(counts), initial, data, schedule, drw_weights,
                               drw_start=drw_start, learning_rate=args.learning_rate)
    recalls = {name: per_class_recall(model, data["x_test"], data["y_test"])
               for name, model in models.items()}

    report(recalls)
    path = args.out / "long_tail_recall.png"
    plot(recalls, counts, path)
    common.print_done(start, {"the per-class recalls": path})
    return {"recalls": recalls, "losses": curves, "counts": counts, "png": path}


if __name__ == "__main__":
    main()
