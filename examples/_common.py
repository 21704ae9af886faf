"""What the example scripts share: the jaxloss import, the train / held-out split of generated
data, model initialisation, the training step, the batch schedule, the lock-step training
loop, the progress bar, the command line (``--seed``, ``--out``, ``--smoke``, the training
and data-size flags, the check of the positive ones), the NumPy box IoU, smoothing,
plotting and the table printer.

Each example keeps its own data, model, losses and report; this module holds the
plumbing around them, so that a script reads as "this data, this model, these
losses". The scripts import it as ``_common`` (a script's own folder is first on
``sys.path`` when Python runs it).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

matplotlib.use("Agg")  # render to files only; no display needed

M = TypeVar("M", bound=nnx.Module)
OUT_DIR = Path(__file__).resolve().parent / "out"  # where the examples save their figures


def import_jaxloss() -> ModuleType:
    """``import jaxloss``, also when a script runs from a checkout without installing it."""
    try:
        import jaxloss
    except ModuleNotFoundError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import jaxloss
    return jaxloss


# ----------------------------------------------------------------------------- data


def draw_splits(draw: Callable[[np.random.Generator], Sequence[np.ndarray]],
                keys: Sequence[str], seed: int, train_images: int,
                test_images: int) -> dict[str, np.ndarray]:
    """``train_images`` training and ``test_images`` held-out samples of ``draw(rng)``, stacked.

    ``draw`` returns one array per name in ``keys``; the stacks go under ``{key}_train``
    and ``{key}_test``. Each split has its own generator, seeded with ``[seed, 0]`` and
    ``[seed, 1]``: the held-out set never overlaps training, and it stays the same when the
    training set grows.
    """
    data = {}
    for split, count, offset in (("train", train_images, 0), ("test", test_images, 1)):
        rng = np.random.default_rng([seed, offset])
        samples = [draw(rng) for _ in range(count)]
        for i, key in enumerate(keys):
            data[f"{key}_{split}"] = np.stack([sample[i] for sample in samples])
    return data


# ----------------------------------------------------------------------------- training


def make_train_step(loss_fn: Callable[..., Any], *, takes_model: bool = False,
                    has_aux: bool = False) -> Callable[..., Any]:
    """A jitted step ``train_step(model, optimizer, inputs, targets)``: the value and gradient
    of the loss with respect to the model's parameters, then one optimizer update.

    The loss is ``loss_fn(model(inputs), targets)``, or with ``takes_model=True``
    ``loss_fn(model, inputs, targets)`` (for a loss that needs more of the model than its
    output, or ``targets`` that are not labels, e.g. a random key). The step returns the
    loss, or with ``has_aux=True`` (``loss_fn`` returns ``(loss, aux)``) the ``aux``.
    """

    @nnx.jit
    def train_step(model: nnx.Module, optimizer: nnx.Optimizer, inputs: jax.Array,
                   targets: jax.Array) -> Any:
        def objective(model: nnx.Module) -> Any:
            if takes_model:
                return loss_fn(model, inputs, targets)
            return loss_fn(model(inputs), targets)

        value, grads = nnx.value_and_grad(objective, has_aux=has_aux)(model)
        optimizer.update(model, grads)
        return value[1] if has_aux else value

    return train_step


def init_model(build: Callable[[], M]) -> M:
    """``build()``, a model's constructor call, traced and compiled as one program.

    Called eagerly, every initializer compiles on its own for every parameter shape, which
    takes seconds on CPU even for a small network; the parameters come out the same. Build a
    model once this way and ``nnx.clone`` it for every run that starts from it.
    """
    return nnx.jit(build)()


class Run:
    """One training run: its model, optimizer and jitted step (:func:`make_train_step` of
    ``loss_fn``), its loss per step and its held-out score during training, ``(step,
    score)`` pairs. ``losses`` and ``scores`` start as copies of the given lists (a run that
    branches off another one keeps its history)."""

    def __init__(self, name: str, model: nnx.Module, optimizer: nnx.Optimizer,
                 loss_fn: Callable[..., Any], *, losses: Sequence[jax.Array] = (),
                 scores: Sequence[tuple[int, float]] = ()) -> None:
        self.name = name
        self.model = model
        self.optimizer = optimizer
        self.step_fn = make_train_step(loss_fn)
        self.losses: list[jax.Array] = list(losses)
        self.scores: list[tuple[int, float]] = list(scores)

    @classmethod
    def adam(cls, name: str, initial: nnx.Module, loss_fn: Callable[..., Any], *,
             learning_rate: float, steps: int, **history: Any) -> Run:
        """A run of a copy of ``initial`` with Adam, its learning rate decaying from
        ``learning_rate`` to 0 over ``steps`` (cosine); ``history``: ``losses``, ``scores``."""
        model = nnx.clone(initial)
        schedule = optax.cosine_decay_schedule(learning_rate, steps)
        return cls(name, model, nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param),
                   loss_fn, **history)


def batches(rng: np.random.Generator, size: int, batch_size: int) -> Iterator[np.ndarray]:
    """Indices of shuffled mini-batches of ``range(size)``, epoch after epoch (the last partial
    batch of each epoch dropped; ``batch_size`` capped at ``size``)."""
    batch_size = min(batch_size, size)
    while True:
        order = rng.permutation(size)
        for start in range(0, size - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def batch_schedule(seed: int, size: int, batch_size: int, steps: int) -> list[np.ndarray]:
    """The indices of every step's batch (:func:`batches` from ``seed``), as one list: the same
    batches for every run that trains on it."""
    return list(itertools.islice(batches(np.random.default_rng(seed), size, batch_size), steps))


def progress(steps: Iterable[int], desc: str) -> tqdm:
    """The examples' progress bar over the training steps (on stderr, kept when done)."""
    return tqdm(steps, desc=desc, unit="step", leave=True, dynamic_ncols=True)


def train_in_lockstep(runs: Sequence[Run], schedule: Sequence[np.ndarray],
                      batch: Callable[[jax.Array], tuple[Any, Any]], *,
                      score: Callable[[nnx.Module], float], eval_every: int,
                      postfix: Callable[[Run], tuple[str, str]], desc: str | None = None,
                      first_step: int = 0) -> None:
    """Steps ``first_step .. len(schedule) - 1`` of every run, in lock-step on the same batches.

    ``batch(index)`` gives a step's ``(inputs, targets)`` from the indices ``schedule[step]``
    (a JAX array); each run's step appends its loss to ``run.losses``. Every ``eval_every``
    steps and after the last one, each run's held-out ``score(run.model)`` joins
    ``run.scores`` as ``(step + 1, score)`` and the progress bar (``desc``, by default the
    runs' names) shows ``postfix(run)``, a ``(key, text)`` pair per run.
    """
    desc = ", ".join(run.name for run in runs) if desc is None else desc
    with progress(range(first_step, len(schedule)), desc) as bar:
        for step in bar:
            inputs, targets = batch(jnp.asarray(schedule[step]))
            for run in runs:
                run.losses.append(run.step_fn(run.model, run.optimizer, inputs, targets))
            if (step + 1) % eval_every == 0 or step == len(schedule) - 1:
                for run in runs:
                    run.scores.append((step + 1, score(run.model)))
                bar.set_postfix(dict(postfix(run) for run in runs))


# ----------------------------------------------------------------------------- evaluation


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of matched ``xyxy`` boxes ``[..., 4]`` (NumPy, independent of jaxloss: the held-out
    metric of the box examples)."""
    w = np.minimum(boxes1[..., 2], boxes2[..., 2]) - np.maximum(boxes1[..., 0], boxes2[..., 0])
    h = np.minimum(boxes1[..., 3], boxes2[..., 3]) - np.maximum(boxes1[..., 1], boxes2[..., 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)

    def area(b: np.ndarray) -> np.ndarray:
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])

    union = area(boxes1) + area(boxes2) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


# ----------------------------------------------------------------------------- command line

# the help of --learning-rate in the examples that decay it (Run.adam)
COSINE_HELP = "initial Adam learning rate (cosine decay to 0 over --steps)"


def add_training_flags(parser: argparse.ArgumentParser, *, steps: int, batch_size: int,
                       learning_rate: float, steps_help: str | None = None,
                       learning_rate_help: str | None = COSINE_HELP) -> None:
    """Adds ``--steps``, ``--batch-size`` and ``--learning-rate`` with the example's defaults
    (``learning_rate_help=None`` for a script that keeps the rate constant)."""
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=learning_rate,
                        help=learning_rate_help)


def add_split_flags(parser: argparse.ArgumentParser, *, train_images: int, test_images: int,
                    eval_every: int | None = None, eval_help: str | None = None) -> None:
    """Adds ``--train-images`` and ``--test-images`` (the sizes of the generated splits) with
    the example's defaults and, given ``eval_every``, ``--eval-every`` (steps between
    held-out evaluations)."""
    parser.add_argument("--train-images", type=int, default=train_images)
    parser.add_argument("--test-images", type=int, default=test_images)
    if eval_every is not None:
        parser.add_argument("--eval-every", type=int, default=eval_every, help=eval_help)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None, *,
               smoke: dict[str, Any], out_help: str = "the PNGs",
               positive: Sequence[str] = ()) -> argparse.Namespace:
    """Adds ``--seed``, ``--out`` and ``--smoke`` to an example's ``parser`` and parses
    ``argv``.

    ``--smoke`` swaps the defaults for ``smoke`` (argument name -> value): a small,
    quick configuration, the one the test suite runs; flags given explicitly still win.
    ``positive``: the arguments (by name, ``"batch_size"``) that must be at least 1; one
    error names them all when one is not.
    """
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help=f"directory for {out_help} (default: examples/out)")
    shown = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in smoke.items())
    parser.add_argument("--smoke", action="store_true",
                        help=f"a short run that checks the script works end to end "
                             f"(the tests' configuration): {shown}")
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
    if positive and min(getattr(args, name) for name in positive) < 1:
        flags = [f"--{name.replace('_', '-')}" for name in positive]
        listed = flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"
        parser.error(f"{listed} must be >= 1")
    return args


# ----------------------------------------------------------------------------- report


def smooth(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average (for readable loss curves)."""
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values)
    running = values[0] if values.size else 0.0
    for i, v in enumerate(values):
        running = alpha * v + (1 - alpha) * running
        out[i] = running
    return out


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, on the file-only Agg backend this module selected."""
    import matplotlib.pyplot as plt

    return plt


def plot_curve(ax: Any, steps: np.ndarray, curve: np.ndarray, *, color: str, label: str,
               span: int | None = None) -> None:
    """A training-loss curve: faint per step, solid smoothed (span: ~1/30 of the run)."""
    span = max(2, curve.size // 30) if span is None else span
    ax.plot(steps, curve, color=color, alpha=0.25, linewidth=0.8)
    ax.plot(steps, smooth(curve, span), color=color, label=label)


def plot_run(ax_loss: Any, ax_score: Any, run: Run, color: str, *, skip: int = 0,
             relative: bool = False) -> None:
    """A run's training loss on ``ax_loss`` (:func:`plot_curve`, from step ``skip + 1``; with
    ``relative=True`` over its first value) and its held-out ``(step, score)`` points on
    ``ax_score``, both labelled with the run's name."""
    curve = np.asarray(jax.device_get(run.losses), dtype=np.float64)
    steps = np.arange(1, curve.size + 1)
    if relative:
        curve = curve / curve[0]
    plot_curve(ax_loss, steps[skip:], curve[skip:], color=color, label=run.name)
    at, score = zip(*run.scores, strict=True) if run.scores else ((), ())
    ax_score.plot(at, score, color=color, marker="o", markersize=3, label=run.name)


def step_axes(*axes: Any, minor_grid: bool = False) -> None:
    """Labels the x axis of each of ``axes`` "step", draws its grid (also at the minor ticks
    with ``minor_grid=True``) and its legend."""
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both" if minor_grid else "major")
        ax.legend(fontsize=8)


def save_figure(fig: Any, path: Path, *, dpi: int = 110, **layout: Any) -> None:
    """Lays ``fig`` out tightly (``layout``: ``tight_layout``'s keywords), writes it (creating
    its folder if need be), closes it."""
    fig.tight_layout(**layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def print_done(start: float, saved: dict[str, Path]) -> None:
    """Prints ``saved <what> to <path>`` for each figure (after a blank line) and the total time
    since ``start`` (a ``time.perf_counter()`` reading)."""
    print()
    for what, path in saved.items():
        print(f"saved {what} to {path}")
    print(f"total time {time.perf_counter() - start:.1f} s")


Cell = float | str


class Table:
    """A plain-text table: a left-aligned label column, then one column per name (at least 6
    characters wide): numbers right-aligned in that column's format spec, text left-aligned."""

    def __init__(self, label_header: str, columns: Sequence[str], *, label_width: int = 0,
                 formats: str | Sequence[str] = ".3f") -> None:
        self.widths = [max(len(name), 6) for name in columns]
        self.formats = [formats] * len(columns) if isinstance(formats, str) else list(formats)
        if len(self.formats) != len(columns):
            raise ValueError(f"{len(columns)} columns but {len(self.formats)} formats")
        self.label_width = max(label_width, len(label_header))
        self.header = self._line(label_header, [f"{name:>{width}}" for name, width
                                                 in zip(columns, self.widths, strict=True)])
        self.rule = "-" * len(self.header)

    def _line(self, label: str, cells: Sequence[Cell]) -> str:
        text = "  ".join(
            f"{cell:<{width}}" if isinstance(cell, str) else f"{format(cell, spec):>{width}}"
            for cell, width, spec in zip(cells, self.widths, self.formats, strict=True))
        return f"{label:<{self.label_width}}  {text}".rstrip()

    def row(self, label: str, cells: Sequence[Cell]) -> str:
        return self._line(label, cells)


def print_table(title: str, label_header: str, columns: Sequence[str],
                rows: Sequence[tuple[str, Sequence[Cell]] | None], *,
                formats: str | Sequence[str] = ".3f") -> None:
    """Prints ``title``, a header, a rule and the ``(label, cells)`` rows (``None``: a rule)."""
    width = max((len(row[0]) for row in rows if row is not None), default=0)
    table = Table(label_header, columns, label_width=width, formats=formats)
    print(f"\n{title}")
    print(table.header)
    print(table.rule)
    for row in rows:
        print(table.rule if row is None else table.row(*row))
