"""Metric learning: a Flax NNX embedding network that retrieves digits it never saw.

The task is retrieval of *unseen classes*, the protocol of CUB/Cars/SOP
(Oh Song et al. 2016): the network is trained on some classes and judged on
others. The data is scikit-learn's 8x8 handwritten digits (shipped inside the
package, no download), placed the way objects appear in photos rather than
centred: every digit is rotated by up to ``--rotation`` degrees, scaled by
0.9-1.3 and dropped at a random position of a ``--canvas`` x ``--canvas``
image, with Gaussian pixel noise (``--noise``). Raw pixels are then a weak
representation -- two images of the same digit a few pixels apart barely
overlap -- as they are for real retrieval, where the point of metric learning
is an embedding that ignores where and how the object appears. (On centred
8x8 digits raw pixels already retrieve unseen digits about as well as any
trained embedding, so an earlier version of this example could not show what
metric learning buys.) Training images get a fresh placement at every step;
held-out images one fixed draw.

Digits 0-5 are split 70/30 into training and held-out images; digits 6-9
(``--unseen``) are never trained on at all. The same embedding network (a
small CNN with global max and mean pooling, so it is translation invariant by
construction, ending in a 64-d embedding), from the same initialisation and
on the same batches, is trained once per loss:

1. ``jaxloss.batch_triplet_loss(mining="all", reduction="avg_non_zero")`` --
   the triplet loss over every triplet of the batch, averaged over those that
   still violate the margin (Hermans et al. 2017's batch-all, PML's default
   reducer), on L2-normalised embeddings. (Batch-hard mining trained from
   scratch did worse than raw pixels here -- recall@1 0.38 against 0.42 on
   unseen digits, seed 0, 300 steps -- the slow start from a nearly
   collapsed embedding that Hermans et al. warn about.)
2. ``jaxloss.arcface_loss`` -- softmax with an additive angular margin
   (Deng et al. 2019) against a learnable class matrix ``kernel`` of shape
   ``(d, classes)`` (Flax's kernel layout), thrown away after training;
3. ``jaxloss.supcon_loss`` -- supervised contrastive loss (Khosla et al. 2020);
4. ``jaxloss.proxy_anchor_loss`` -- Proxy-Anchor (Kim et al. 2020): one
   learnable proxy per class, ``(d, classes)``, each proxy an anchor against
   the whole batch;
5. ``jaxloss.supcon_loss`` with a cross-batch memory
   (``jaxloss.CrossBatchMemory``, Wang et al. 2020): the batch's anchors meet
   positives and negatives from the last ``--memory`` embeddings (four
   batches by default), carried by the jitted train step as state. A memory
   pays off when a batch holds few positives per anchor (thousands of
   classes, small batches); here every batch of 128 already holds about 21
   images of each of the 6 classes, so it adds little, and its slots lag
   behind the changing network (seed 0: 0.54 against plain SupCon's 0.61 on
   unseen digits, still above the pixels' 0.42).

Evaluation is retrieval, not classification: recall@1 is the fraction of
held-out images whose nearest neighbour (cosine similarity, among the other
held-out embeddings, itself excluded) has the same class, for the held-out
images of the training classes ("seen classes") and, separately, for the
classes the network never saw ("unseen classes": does the embedding
generalise beyond its training labels?), next to two baselines: the raw
pixels and the untrained network. The held-out embeddings are projected to
2-D with PCA (numpy SVD) and plotted, one panel per loss, coloured by class.

Run it with::

    python examples/metric_learning.py              # 5 x 400 steps: 14 min on a busy 2-core CPU
    python examples/metric_learning.py --smoke      # 2 losses, 200 steps (the tests' run)
    python examples/metric_learning.py --steps 1000 --seed 1 --out /tmp/ml
"""

from __future__ import annotations

import argparse
import math
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

NUM_DIGITS = 10
EMBEDDING_DIM = 64
DIGIT = 8  # the digits are 8x8
METHODS = ("triplet (batch-all)", "ArcFace", "SupCon", "ProxyAnchor", "SupCon + memory")
SMOKE = {"steps": 200, "memory": 256, "warmup": 100, "methods": "ProxyAnchor,SupCon + memory"}

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def load_data(seed: int, unseen: tuple[int, ...], *, canvas: int, rotation: float,
              noise: float) -> dict[str, np.ndarray]:
    """Digits as float32 NHWC images in [0, 1].

    ``train``/``seen``: a stratified 70/30 split of the classes not in
    ``unseen``, relabelled ``0..K-1`` for the class matrices (``digit_*``
    keeps the digit); ``unseen``: every image of the ``unseen`` classes. The
    held-out images (``seen``, ``unseen``) are placed once (:func:`place`) on
    ``canvas x canvas`` images; the training digits are returned as 8x8
    originals (``train`` places every batch afresh).
    """
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    digit = digits.target.astype(np.int32)
    is_unseen = np.isin(digit, unseen)
    seen_digits = np.array([c for c in range(NUM_DIGITS) if c not in unseen], np.int32)
    relabel = np.full(NUM_DIGITS, -1, np.int32)
    relabel[seen_digits] = np.arange(seen_digits.size, dtype=np.int32)
    x_train, x_seen, d_train, d_seen = train_test_split(
        images[~is_unseen], digit[~is_unseen], test_size=0.3, stratify=digit[~is_unseen],
        random_state=seed)
    rng = np.random.default_rng([seed, 1])  # the held-out placement, fixed per seed
    kw = {"canvas": canvas, "rotation": rotation, "noise": noise}
    return {"x_train": x_train, "y_train": relabel[d_train], "digit_train": d_train,
            "x_seen": place(x_seen, rng, **kw), "digit_seen": d_seen,
            "x_unseen": place(images[is_unseen], rng, **kw),
            "digit_unseen": digit[is_unseen],
            "seen_digits": seen_digits}


def place(images: np.ndarray, rng: np.random.Generator, *, canvas: int, rotation: float,
          noise: float, scale: tuple[float, float] = (0.9, 1.3)) -> np.ndarray:
    """Each 8x8 digit rotated by a random angle in ``[-rotation, rotation]`` degrees, scaled
    by a random factor in ``scale`` and centred at a random point of a ``canvas x canvas``
    image where it fits (bilinear resampling, zero outside the digit), plus Gaussian noise
    of standard deviation ``noise``, clipped to [0, 1]. ``(n, 8, 8, 1) -> (n, canvas,
    canvas, 1)``."""
    n = len(images)
    angle = np.radians(rng.uniform(-rotation, rotation, n))
    factor = rng.uniform(*scale, n)
    # the digit's half-diagonal after scaling, so that its rotated square fits the canvas
    reach = np.minimum(DIGIT / 2 * factor * math.sqrt(2), canvas / 2)
    cy, cx = (canvas / 2 + rng.uniform(-1, 1, (2, n)) * (canvas / 2 - reach))
    grid = np.arange(canvas) + 0.5
    dy = (grid[None, :, None] - cy[:, None, None]) / factor[:, None, None]  # [n, canvas, 1]
    dx = (grid[None, None, :] - cx[:, None, None]) / factor[:, None, None]  # [n, 1, canvas]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    sy = cos * dy - sin * dx + DIGIT / 2 - 0.5                           # source row
    sx = sin * dy + cos * dx + DIGIT / 2 - 0.5                           # source column
    source = np.pad(images[..., 0], ((0, 0), (1, 1), (1, 1)))            # zero border
    y0, x0 = np.floor(sy), np.floor(sx)
    wy, wx = sy - y0, sx - x0
    index = np.arange(n)[:, None, None]

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:  # out of the digit: the zero border
        y = np.clip(y, -1, DIGIT).astype(np.int64) + 1
        x = np.clip(x, -1, DIGIT).astype(np.int64) + 1
        return source[index, y, x]

    out = ((1 - wy) * (1 - wx) * at(y0, x0) + (1 - wy) * wx * at(y0, x0 + 1)
           + wy * (1 - wx) * at(y0 + 1, x0) + wy * wx * at(y0 + 1, x0 + 1))
    out = out + rng.normal(0.0, noise, size=out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]


# ----------------------------------------------------------------------------- model


class EmbeddingNet(nnx.Module):
    """Three 3x3 convolutions (two 2x2 max-pools between them), global max and mean pooling
    (translation invariant), two dense layers -> a ``dim``-d embedding."""

    def __init__(self, dim: int = EMBEDDING_DIM, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, 16, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
        self.dense1 = nnx.Linear(2 * 64, 128, rngs=rngs)
        self.dense2 = nnx.Linear(128, dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [N, H, W, 1] -> [N, dim]
        x = nnx.relu(self.conv1(x))  # [N, H, W, 16]
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))  # [N, H/2, W/2, 16]
        x = nnx.relu(self.conv2(x))  # [N, H/2, W/2, 32]
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))  # [N, H/4, W/4, 32]
        x = nnx.relu(self.conv3(x))  # [N, H/4, W/4, 64]
        x = jnp.concatenate([jnp.max(x, axis=(1, 2)), jnp.mean(x, axis=(1, 2))], axis=-1)
        x = nnx.relu(self.dense1(x))
        return self.dense2(x)  # the embedding (not normalised; the losses normalise)


class Model(nnx.Module):
    """The embedding network plus a class matrix ``kernel`` ``(dim, classes)``: ArcFace's
    class weights, or ProxyAnchor's proxies.

    Every run builds the same ``Model`` from the same seed, so the networks
    start identical; only the ArcFace and ProxyAnchor runs use (and train) the kernel.
    """

    def __init__(self, num_classes: int, dim: int = EMBEDDING_DIM, *, rngs: nnx.Rngs) -> None:
        self.net = EmbeddingNet(dim, rngs=rngs)
        self.kernel = nnx.Param(jax.random.normal(rngs.params(), (dim, num_classes)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net(x)


# loss_fn(model, images, labels, memory) -> (loss, new memory); memory is None except for
# the cross-batch-memory run.
LossFn = Callable[[Model, jax.Array, jax.Array, Any], tuple[jax.Array, Any]]


@nnx.jit
def embed(model: Model, images: jax.Array) -> jax.Array:
    return model(images)


def train(name: str, loss_fn: LossFn, initial: Model, data: dict[str, np.ndarray], *,
          steps: int, batch_size: int, seed: int, learning_rate: float, memory: Any,
          place_kw: dict[str, Any]) -> tuple[np.ndarray, Model]:
    """Trains a copy of ``initial`` (the same for every loss, as are the placed batches);
    returns its loss curve and the trained model. ``memory`` (or None) is carried from step
    to step, as an optimiser state is."""
    model = nnx.clone(initial)
    optimizer = nnx.Optimizer(model, optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
                              wrt=nnx.Param)

    def objective(model: Model, images: jax.Array, targets: tuple[jax.Array, Any]) -> Any:
        loss, new_memory = loss_fn(model, images, *targets)
        return loss, (loss, new_memory)

    step_fn = common.make_train_step(objective, takes_model=True, has_aux=True)
    x_train, y_train = data["x_train"], data["y_train"]
    rng = np.random.default_rng(seed)
    index_stream = common.batches(rng, len(y_train), batch_size)
    losses = []
    with common.progress(range(steps), f"{name:>18}") as bar:
        for step in bar:
            index = next(index_stream)
            images = place(x_train[index], rng, **place_kw)
            loss, memory = step_fn(model, optimizer, jnp.asarray(images),
                                   (jnp.asarray(y_train[index]), memory))
            losses.append(loss)
            if step % 50 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{float(losses[-1]):.4f}")
    return np.asarray(jax.device_get(losses), dtype=np.float64), model


# ----------------------------------------------------------------------------- evaluation


def recall_at_1(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose nearest other row (cosine similarity) has the same label."""
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)  # a row is not its own neighbour
    return float(np.mean(labels[np.argmax(similarity, axis=1)] == labels))


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """Projection on the first two principal components (SVD of the centred, normalised rows)."""
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def report(recalls: dict[str, tuple[float, float]], data: dict[str, np.ndarray]) -> None:
    """The recall@1 table: a row per model (the baselines first), seen and unseen classes."""
    seen = ", ".join(map(str, data["seen_digits"]))
    unseen = ", ".join(map(str, sorted(set(data["digit_unseen"].tolist()))))
    common.print_table(
        "Recall@1 on held-out images (nearest other held-out image, cosine similarity):\n"
        f"  seen classes   = digits {seen}: {len(data['digit_seen'])} held-out images\n"
        f"  unseen classes = digits {unseen}: {len(data['digit_unseen'])} images, "
        "never trained on\n",
        "", ["seen classes", "unseen classes"], list(recalls.items()))


def plot_embeddings(points: dict[str, np.ndarray], digits: np.ndarray, seen: np.ndarray,
                    recalls: dict[str, tuple[float, float]], path: Path) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(5.0 * len(points), 5.0), squeeze=False)
    cmap = plt.get_cmap("tab10")
    is_seen = np.isin(digits, seen)
    for ax, (name, xy) in zip(axes[0], points.items(), strict=True):
        for digit in range(NUM_DIGITS):
            mask = digits == digit
            if not mask.any():
                continue
            marker = "o" if digit in seen else "x"
            ax.scatter(xy[mask, 0], xy[mask, 1], s=10 if marker == "o" else 16, marker=marker,
                       color=cmap(digit), alpha=0.7, linewidths=0.8,
                       label=f"{digit}{'' if digit in seen else ' (unseen)'}")
        r_seen, r_unseen = recalls[name]
        ax.set_title(f"{name}\nrecall@1 seen {r_seen:.3f}, unseen {r_unseen:.3f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"PCA of the held-out embeddings ({int(is_seen.sum())} images of seen classes, "
                 f"{int((~is_seen).sum())} of unseen classes: x)")
    common.save_figure(fig, path)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_training_flags(parser, steps=400, batch_size=128, learning_rate=2e-3,
                              steps_help="training steps per loss", learning_rate_help=None)
    parser.add_argument("--unseen", type=str, default="6,7,8,9",
                        help="comma-separated digits held out of training entirely "
                             "(default 6,7,8,9)")
    parser.add_argument("--canvas", type=int, default=28,
                        help="side of the image the digit is placed on, in pixels (>= 8)")
    parser.add_argument("--rotation", type=float, default=30.0,
                        help="largest rotation of a digit, in degrees (default 30)")
    parser.add_argument("--noise", type=float, default=0.2,
                        help="standard deviation of the pixel noise (default 0.2)")
    parser.add_argument("--memory", type=int, default=512,
                        help="slots of the cross-batch memory (>= the batch size)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="steps before the memory's older slots are used (XBM's warm-up)")
    parser.add_argument("--methods", type=str, default=",".join(METHODS),
                        help=f"comma-separated losses to train (default: all of {METHODS})")
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="the PNG")
    if min(args.steps, args.batch_size) < 1 or args.memory < args.batch_size:
        parser.error("--steps and --batch-size must be >= 1 and --memory >= --batch-size")
    if args.canvas < DIGIT or args.noise < 0 or not 0 <= args.rotation <= 180:
        parser.error("--canvas must be >= 8, --noise >= 0 and --rotation in [0, 180]")
    args.methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not args.methods or not set(args.methods) <= set(METHODS):
        parser.error(f"--methods must name some of {METHODS}")
    try:
        args.unseen = tuple(sorted({int(c) for c in args.unseen.split(",") if c.strip()}))
    except ValueError:
        parser.error("--unseen must be comma-separated digits")
    if not all(0 <= c < NUM_DIGITS for c in args.unseen) or len(args.unseen) > NUM_DIGITS - 2:
        parser.error("--unseen must name digits 0-9 and leave at least two classes to train on")
    return args


def make_losses(memory_size: int, warmup: int) -> dict[str, tuple[LossFn, Any]]:
    """Each method's loss ``(model, images, labels, memory) -> (loss, memory)`` and its initial
    memory: None for all but the cross-batch-memory run, whose state is the memory and the
    step (the memory's older slots are used from step ``warmup`` on)."""

    def triplet(model: Model, images: jax.Array, labels: jax.Array, memory: Any) -> Any:
        return jaxloss.batch_triplet_loss(model(images), labels, mining="all", margin=0.2,
                                          reduction="avg_non_zero"), memory

    def arcface(model: Model, images: jax.Array, labels: jax.Array, memory: Any) -> Any:
        return jaxloss.arcface_loss(model(images), labels, model.kernel[...], scale=30.0,
                                    margin=0.3), memory

    def supcon(model: Model, images: jax.Array, labels: jax.Array, memory: Any) -> Any:
        return jaxloss.supcon_loss(model(images), labels, temperature=0.1), memory

    def proxy_anchor(model: Model, images: jax.Array, labels: jax.Array, memory: Any) -> Any:
        return jaxloss.proxy_anchor_loss(model(images), labels, model.kernel[...],
                                         margin=0.1, alpha=32.0), memory

    def supcon_memory(model: Model, images: jax.Array, labels: jax.Array, state: Any) -> Any:
        memory, step = state
        embeddings = model(images)
        # PML's order: enqueue the batch (as constants), then pair every anchor of the batch
        # with every slot of the memory but its own copy.
        memory = memory.update(embeddings, labels)
        refs = memory.references(embeddings.shape[0])
        # XBM's warm-up: while the embedding still changes fast, older slots are stale;
        # until then only the batch just enqueued is used (plain in-batch SupCon).
        fresh = (memory.source >= 0)[None, :]
        refs["ref_where"] = refs["ref_where"] & (fresh | (step >= warmup))
        loss = jaxloss.supcon_loss(embeddings, labels, temperature=0.1, **refs)
        return loss, (memory, step + 1)

    return {"triplet (batch-all)": (triplet, None), "ArcFace": (arcface, None),
            "SupCon": (supcon, None), "ProxyAnchor": (proxy_anchor, None),
            "SupCon + memory": (supcon_memory, (jaxloss.CrossBatchMemory.init(
                memory_size, EMBEDDING_DIM), jnp.zeros((), jnp.int32)))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the held-out recall@1 (seen, unseen classes) of every row of
    the table and the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    place_kw = {"canvas": args.canvas, "rotation": args.rotation, "noise": args.noise}
    data = load_data(args.seed, args.unseen, **place_kw)
    print(f"digits: {len(data['y_train'])} training images of digits "
          f"{', '.join(map(str, data['seen_digits']))}; held out: {len(data['digit_seen'])} "
          f"images of those digits and {len(data['digit_unseen'])} of digits "
          f"{', '.join(map(str, args.unseen)) or '(none)'}; each digit rotated by up to "
          f"{args.rotation:g} degrees, scaled by 0.9-1.3 and placed at random on a "
          f"{args.canvas}x{args.canvas} canvas, pixel noise {args.noise}")

    losses = {name: fn for name, fn in make_losses(args.memory, args.warmup).items()
              if name in args.methods}
    x_seen, x_unseen = jnp.asarray(data["x_seen"]), jnp.asarray(data["x_unseen"])
    has_unseen = len(data["digit_unseen"]) > 0

    def evaluate(model: Model) -> tuple[tuple[float, float], np.ndarray]:
        e_seen = np.asarray(embed(model, x_seen))
        e_unseen = np.asarray(embed(model, x_unseen)) if has_unseen else e_seen[:0]
        r_unseen = recall_at_1(e_unseen, data["digit_unseen"]) if has_unseen else float("nan")
        return (recall_at_1(e_seen, data["digit_seen"]), r_unseen), np.concatenate([e_seen,
                                                                                     e_unseen])

    initial = common.init_model(lambda: Model(len(data["seen_digits"]),
                                              rngs=nnx.Rngs(args.seed)))
    recalls: dict[str, tuple[float, float]] = {
        "raw pixels": (recall_at_1(data["x_seen"].reshape(len(x_seen), -1), data["digit_seen"]),
                       recall_at_1(data["x_unseen"].reshape(len(x_unseen), -1),
                                   data["digit_unseen"]) if has_unseen else float("nan")),
        "untrained network": evaluate(initial)[0],
    }
    points: dict[str, np.ndarray] = {}
    for name, (loss_fn, memory) in losses.items():
        _, model = train(name, loss_fn, initial, data, steps=args.steps,
                         batch_size=args.batch_size, seed=args.seed,
                         learning_rate=args.learning_rate, memory=memory, place_kw=place_kw)
        recalls[name], embeddings = evaluate(model)
        points[name] = pca_2d(embeddings)
    report(recalls, data)
    explain(recalls)

    path = args.out / "metric_learning_embeddings.png"
    digits = np.concatenate([data["digit_seen"], data["digit_unseen"]])
    plot_embeddings(points, digits, data["seen_digits"], recalls, path)
    common.print_done(start, {"the 2-D projections of the held-out embeddings": path})
    return {"recalls": recalls, "png": path}


def explain(recalls: dict[str, tuple[float, float]]) -> None:
    """What the table means, and which method wins on the classes never trained on."""
    pixels = recalls["raw pixels"][1]
    trained = {k: v for k, v in recalls.items() if k not in ("raw pixels", "untrained network")}
    print("\nWhat the numbers mean: recall@1 is the chance that an image's nearest other image "
          "(cosine similarity of the representation) shows the same digit. The unseen-classes "
          "column is the retrieval task proper: those digits were never trained on, so only an "
          "embedding that learned what makes digits alike in general (and ignores position, "
          "rotation, size and noise) retrieves them. Raw pixels are the baseline to beat: on "
          "randomly placed digits two images of the same digit barely overlap.")
    if not trained or math.isnan(pixels):
        return
    best = max(trained, key=lambda k: trained[k][1])
    beat = [k for k, v in trained.items() if v[1] > pixels]
    print(f"On unseen classes raw pixels reach {pixels:.3f}; "
          f"{len(beat)} of {len(trained)} trained embeddings beat them "
          f"({', '.join(beat) or 'none'}); the best is {best} at {trained[best][1]:.3f}.")


if __name__ == "__main__":
    main()
