"""Knowledge distillation: a small Flax NNX student learns from a CNN ten times its size.

The data is scikit-learn's 8x8 handwritten digits (shipped inside the package,
no download), split 60/40 into a training pool and a held-out test split. A
teacher CNN (~38k parameters) is trained with cross-entropy on the whole
labelled pool. The student (~3.7k parameters, about a tenth of the teacher)
is given only ``--labels-per-class`` labelled images per digit, the situation
distillation is for: labels are scarce, images are not. From the same
initialisation and on the same batches it is trained three times:

1. alone: ``jaxloss.cross_entropy_loss`` on its labelled images;
2. and 3. distilled: the same cross-entropy plus
   ``jaxloss.distillation_loss(student_logits, teacher_logits, temperature=T)``
   on batches of the pool's images without their labels (Hinton et al.'s
   transfer set), at two temperatures ``T`` (``--temperatures``, 2 and 8 by
   default). The temperature is a traced argument of the one jitted step
   that trains all three runs (alone: distillation weight 0).

It prints the test accuracy of the teacher and of each student, and saves the
students' test-accuracy curves as a PNG.

Run it with::

    python examples/distillation.py              # ~1 minute on 2 CPU cores
    python examples/distillation.py --smoke      # the tests' short run
    python examples/distillation.py --student-steps 3000 --seed 1 --out /tmp/kd
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import _common as common  # examples/_common.py: what the examples share
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_CLASSES = 10
TEACHER = {"width": 16, "hidden": 64}
STUDENT = {"width": 4, "hidden": 24}
SMOKE = {"teacher_steps": 150, "student_steps": 150, "eval_every": 50}  # the tests' quick run

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def load_data(seed: int, labels_per_class: int) -> dict[str, np.ndarray]:
    """Digits as float32 NHWC images in [0, 1]: the training pool, the student's labelled
    subset of it (``labels_per_class`` per digit) and the test split."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    labels = digits.target.astype(np.int32)
    x_pool, x_test, y_pool, y_test = train_test_split(
        images, labels, test_size=0.4, stratify=labels, random_state=seed)
    rng = np.random.default_rng(seed)
    few = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(y_pool == c), size=labels_per_class, replace=False)
        for c in range(NUM_CLASSES)]))
    return {"x_pool": x_pool, "y_pool": y_pool, "x_few": x_pool[few], "y_few": y_pool[few],
            "x_test": x_test, "y_test": y_test}


# ----------------------------------------------------------------------------- model


class CNN(nnx.Module):
    """Two 3x3 convolutions (``width`` and ``2 width`` channels), 2x2 average pooling, two
    dense layers."""

    def __init__(self, width: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, width, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(3, 3), rngs=rngs)
        self.dense1 = nnx.Linear(4 * 4 * 2 * width, hidden, rngs=rngs)
        self.dense2 = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [N, 8, 8, 1] -> [N, classes]
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))  # [N, 4, 4, 2w]
        x = nnx.relu(self.dense1(x.reshape(x.shape[0], -1)))
        return self.dense2(x)  # logits, class axis last


def parameter_count(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@nnx.jit
def logits_of(model: CNN, images: jax.Array) -> jax.Array:
    return model(images)


def accuracy(model: CNN, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(logits_of(model, jnp.asarray(images))), -1)
                         == labels))


# ----------------------------------------------------------------------------- training


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jaxloss.cross_entropy_loss(logits, labels)


def student_loss(model: CNN, inputs: tuple[jax.Array, jax.Array],
                 targets: tuple[jax.Array, jax.Array, jax.Array, jax.Array]) -> jax.Array:
    """Cross-entropy on a labelled batch plus ``weight`` times the distillation loss on a
    transfer batch (``weight`` 0: the student alone); the temperature is traced."""
    labelled, transfer = inputs
    labels, teacher_logits, temperature, weight = targets
    hard = jaxloss.cross_entropy_loss(model(labelled), labels)
    soft = jaxloss.distillation_loss(model(transfer), teacher_logits, temperature=temperature)
    return hard + weight * soft


def train_teacher(data: dict[str, np.ndarray], *, steps: int, batch_size: int, seed: int,
                  learning_rate: float) -> CNN:
    initial = common.init_model(lambda: CNN(**TEACHER, rngs=nnx.Rngs(seed)))
    run = common.Run.adam("teacher", initial, cross_entropy, learning_rate=learning_rate,
                          steps=steps)
    x, y = jnp.asarray(data["x_pool"]), jnp.asarray(data["y_pool"])
    batches = common.batches(np.random.default_rng(seed), len(y), batch_size)
    with common.progress(range(steps), f"{'teacher':>17}") as bar:
        for _ in bar:
            index = jnp.asarray(next(batches))
            run.losses.append(run.step_fn(run.model, run.optimizer, x[index], y[index]))
    return run.model


def train_students(runs: dict[str, tuple[float, float]], data: dict[str, np.ndarray],
                   teacher_logits: np.ndarray, *, steps: int, batch_size: int, seed: int,
                   learning_rate: float, eval_every: int) -> tuple[dict[str, list], dict]:
    """Trains one student per ``name -> (temperature, distillation weight)`` from the same
    initialisation on the same batches; returns the test-accuracy curves and the models."""
    initial = common.init_model(lambda: CNN(**STUDENT, rngs=nnx.Rngs(seed + 1)))
    step_fn = common.make_train_step(student_loss, takes_model=True)
    labelled = common.batch_schedule(seed, len(data["y_few"]), batch_size, steps)
    transfer = common.batch_schedule(seed + 1, len(data["x_pool"]), batch_size, steps)
    x_few, y_few = jnp.asarray(data["x_few"]), jnp.asarray(data["y_few"])
    x_pool, soft = jnp.asarray(data["x_pool"]), jnp.asarray(teacher_logits)
    curves, models = {}, {}
    for name, (temperature, weight) in runs.items():
        run = common.Run.adam(name, initial, cross_entropy, learning_rate=learning_rate,
                              steps=steps)
        t, w = jnp.float32(temperature), jnp.float32(weight)
        with common.progress(range(steps), f"{name:>17}") as bar:
            for step in bar:
                a, b = jnp.asarray(labelled[step]), jnp.asarray(transfer[step])
                run.losses.append(step_fn(run.model, run.optimizer, (x_few[a], x_pool[b]),
                                          (y_few[a], soft[b], t, w)))
                if (step + 1) % eval_every == 0 or step == steps - 1:
                    score = accuracy(run.model, data["x_test"], data["y_test"])
                    run.scores.append((step + 1, score))
                    bar.set_postfix(test_accuracy=f"{score:.3f}")
        curves[name], models[name] = run.scores, run.model
    return curves, models


# ----------------------------------------------------------------------------- report


def plot(curves: dict[str, list], teacher_accuracy: float, path: Path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, scores in curves.items():
        steps, values = zip(*scores, strict=True)
        ax.plot(steps, values, marker="o", markersize=3, label=name)
    ax.axhline(teacher_accuracy, color="0.4", linestyle="--",
               label=f"teacher ({teacher_accuracy:.3f})")
    ax.set_xlabel("student training step")
    ax.set_ylabel("test accuracy")
    ax.set_title("Student test accuracy: alone vs distilled from the teacher")
    ax.legend()
    ax.grid(alpha=0.3)
    common.save_figure(fig, path, dpi=120)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher-steps", type=int, default=1000)
    parser.add_argument("--student-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--labels-per-class", type=int, default=5,
                        help="labelled training images per digit for the student")
    parser.add_argument("--temperatures", type=float, nargs=2, default=[2.0, 8.0])
    parser.add_argument("--eval-every", type=int, default=100,
                        help="student steps between test-accuracy points")
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="distillation_curves.png")
    if min(args.teacher_steps, args.student_steps, args.batch_size, args.eval_every) < 1:
        parser.error("step counts, --batch-size and --eval-every must be >= 1")
    if not 1 <= args.labels_per_class <= 100 or min(args.temperatures) <= 0:
        parser.error("--labels-per-class must lie in [1, 100] and temperatures be > 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the test accuracies, the students' curves and the PNG's
    path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = load_data(args.seed, args.labels_per_class)
    teacher = train_teacher(data, steps=args.teacher_steps, batch_size=args.batch_size,
                            seed=args.seed, learning_rate=args.learning_rate)
    teacher_accuracy = accuracy(teacher, data["x_test"], data["y_test"])
    teacher_logits = np.asarray(logits_of(teacher, jnp.asarray(data["x_pool"])))
    low, high = args.temperatures
    runs = {"student alone": (1.0, 0.0), f"distilled T={low:g}": (low, 1.0),
            f"distilled T={high:g}": (high, 1.0)}
    curves, students = train_students(
        runs, data, teacher_logits, steps=args.student_steps, batch_size=args.batch_size,
        seed=args.seed, learning_rate=args.learning_rate, eval_every=args.eval_every)
    accuracies = {"teacher": teacher_accuracy}
    accuracies.update({name: curves[name][-1][1] for name in runs})
    sizes = {"teacher": parameter_count(teacher)}
    sizes.update({name: parameter_count(model) for name, model in students.items()})

    labelled = len(data["y_few"])
    print(f"\ndigits: teacher trained on {len(data['y_pool'])} labelled images; each student "
          f"on {labelled} labelled images ({args.labels_per_class} per digit), the distilled "
          f"ones also on the teacher's logits for the {len(data['x_pool'])} pool images; "
          f"{len(data['y_test'])} test images")
    common.print_table("Test accuracy (fraction of the held-out digits classified right):",
                       "model", ["parameters", "test accuracy"],
                       [(name, [float(sizes[name]), accuracies[name]]) for name in accuracies],
                       formats=[".0f", ".3f"])
    alone = accuracies["student alone"]
    best = max(runs, key=lambda n: accuracies[n])
    print(f"best student: {best} ({accuracies[best] - alone:+.3f} over the student alone; "
          f"the student has {sizes['student alone'] / sizes['teacher']:.1%} of the teacher's "
          "parameters)")
    path = args.out / "distillation_curves.png"
    plot(curves, teacher_accuracy, path)
    common.print_done(start, {"the students' test-accuracy curves": path})
    return {"accuracies": accuracies, "curves": curves, "parameters": sizes, "png": path}


if __name__ == "__main__":
    main()
