"""Global-batch losses on 8 devices: ``shard_map`` with ``axis_name`` equals one device.

Some losses depend on the whole batch, not on each sample alone: batch (pooled)
Dice, contrastive losses whose negatives are the rest of the batch
(NT-Xent/InfoNCE, SigLIP) and batch-hard triplet mining. Split the batch over
devices and compute such a loss on each shard, and every device sees only its
own slice: fewer negatives, a different Dice. jaxloss's ``axis_name=`` fixes
that: inside ``jax.shard_map`` the loss gathers or sums across the named mesh
axis, so the sharded value *and gradient* equal the single-device ones on the
global batch.

The script runs on 8 simulated CPU devices (``XLA_FLAGS=
--xla_force_host_platform_device_count=8``, set below before JAX is imported;
on a machine with 8 accelerators it uses those instead) and does two things:

1. **Equality.** For batch Dice, NT-Xent, SigLIP and batch-hard triplet it
   computes value and gradient on one device and sharded over the 8 devices
   with ``axis_name="data"``, and prints the largest differences (float32
   round-off: about 1e-7). The same losses computed per shard *without*
   ``axis_name`` (and averaged over the devices, what a naive data-parallel
   port does) are printed next to them: those differ.
2. **Training.** A small Flax NNX embedding network (an MLP) learns to embed
   generated data (16 classes of noisy points in 32 dimensions) with NT-Xent
   and a global batch of 64, three times from the same initialisation on the
   same batches: on one device, data-parallel over 8 devices with
   ``axis_name`` (8 samples per device), and data-parallel without it. The
   first two follow the same trajectory (their loss curves differ by
   round-off); the third sees only 8 samples per device, so most anchors
   have no positive and few negatives, and learns a worse embedding. The
   held-out score is recall@1: the fraction of held-out points whose nearest
   neighbour (cosine) has the same class.

Run it with::

    python examples/sharded.py            # ~1 minute on 2 CPU cores
    python examples/sharded.py --smoke    # a few steps: checks that it runs end to end

Multi-host: call ``jax.distributed.initialize()`` first on every host, build
the mesh over ``jax.devices()`` (all hosts' devices), and feed each host its
own slice of the global batch (``jax.make_array_from_process_local_data``);
the loss code is unchanged, see the scaling page of the documentation.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import _common as common
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

jaxloss = common.import_jaxloss()

SMOKE = {"steps": 15}
NUM_CLASSES = 16
DIM = 32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps of each run")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--temperature", type=float, default=0.1, help="NT-Xent's temperature")
    return common.parse_args(parser, argv, smoke=SMOKE)


# ----------------------------------------------------------------------------- equality


def equality_cases(rng: np.random.Generator) -> dict[str, tuple[Callable[..., Any], tuple]]:
    """name -> (loss(arrays..., axis_name=...), arrays): the global-batch losses of this page."""
    logits = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    masks = rng.integers(0, 3, size=(16, 8, 8)).astype(np.int32)
    emb = rng.normal(size=(32, 16)).astype(np.float32)
    labels = rng.permutation(np.repeat(np.arange(8), 4)).astype(np.int32)
    text = (emb + 0.5 * rng.normal(size=emb.shape)).astype(np.float32)
    return {
        "batch Dice": (functools.partial(jaxloss.dice_loss, per_image=False), (logits, masks)),
        "NT-Xent / InfoNCE": (functools.partial(jaxloss.ntxent_loss, temperature=0.1),
                              (emb, labels)),
        "SigLIP": (jaxloss.siglip_loss, (emb, text)),
        "batch-hard triplet": (functools.partial(jaxloss.batch_triplet_loss, mining="hard",
                                                 margin=0.2), (emb, labels)),
    }


def sharded(mesh: Mesh, loss: Callable[..., Any], n_arrays: int, *,
            axis_name: str | None) -> Callable[..., Any]:
    """The loss over arrays split along their first axis across the mesh's ``data`` axis.

    With ``axis_name="data"`` each shard's loss call sees the global batch through the
    collectives; with ``None`` each device computes the loss of its own shard and the
    results are averaged (a naive data-parallel port).
    """

    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"),) * n_arrays,
                       out_specs=P())
    def run(*arrays: jax.Array) -> jax.Array:
        if axis_name is not None:
            return loss(*arrays, axis_name=axis_name)
        return jax.lax.pmean(loss(*arrays), "data")

    return run


def check_equality(mesh: Mesh, seed: int) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for name, (loss, arrays) in equality_cases(np.random.default_rng(seed)).items():
        arrays = tuple(jnp.asarray(a) for a in arrays)
        value, grad = jax.jit(jax.value_and_grad(loss))(*arrays)
        with_axis = sharded(mesh, loss, len(arrays), axis_name="data")
        s_value, s_grad = jax.jit(jax.value_and_grad(with_axis))(*arrays)
        naive = jax.jit(sharded(mesh, loss, len(arrays), axis_name=None))(*arrays)
        rows[name] = {
            "single": float(value), "sharded": float(s_value),
            "value_diff": abs(float(s_value) - float(value)),
            "grad_diff": float(jnp.max(jnp.abs(s_grad - grad))),
            "naive": float(naive),
        }
    return rows


# ----------------------------------------------------------------------------- training


def make_data(seed: int, n_train: int = 2048, n_test: int = 512) -> dict[str, np.ndarray]:
    """16 classes of noisy points in 32-D, seen through a fixed random nonlinearity."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(NUM_CLASSES, 8))
    mixing = rng.normal(size=(8, DIM)) / np.sqrt(8)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, NUM_CLASSES, size=n)
        z = centers[y] + 0.9 * rng.normal(size=(n, 8))
        x = np.tanh(z @ mixing) + 0.3 * rng.normal(size=(n, DIM))
        return x.astype(np.float32), y.astype(np.int32)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


class Embedder(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(DIM, 64, rngs=rngs)
        self.out = nnx.Linear(64, 16, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.gelu(self.hidden(x)))


def recall_at_1(embeddings: np.ndarray, labels: np.ndarray) -> float:
    e = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = e @ e.T
    np.fill_diagonal(similarity, -np.inf)
    return float(np.mean(labels[np.argmax(similarity, axis=1)] == labels))


def train(mode: str, mesh: Mesh, graphdef: Any, params: Any, data: dict[str, np.ndarray],
          schedule: list[np.ndarray], temperature: float) -> tuple[np.ndarray, float]:
    """Trains one copy of the network; returns the loss per step and the held-out recall@1."""

    def loss_of(params: Any, x: jax.Array, y: jax.Array, axis_name: str | None) -> jax.Array:
        model = nnx.merge(graphdef, params)
        return jaxloss.ntxent_loss(model(x), y, temperature=temperature, axis_name=axis_name)

    if mode == "one device":
        objective = functools.partial(loss_of, axis_name=None)
    else:
        axis_name = "data" if mode == "8 devices, axis_name" else None

        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                           out_specs=P())
        def objective(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
            value = loss_of(params, x, y, axis_name)
            return value if axis_name else jax.lax.pmean(value, "data")

    optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, len(schedule)))

    @jax.jit
    def step(params: Any, opt_state: Any, x: jax.Array, y: jax.Array) -> tuple[Any, ...]:
        value, grads = jax.value_and_grad(objective)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state = optimizer.init(params)
    losses = []
    for batch in common.progress(schedule, mode):
        params, opt_state, value = step(params, opt_state, jnp.asarray(data["x_train"][batch]),
                                        jnp.asarray(data["y_train"][batch]))
        losses.append(value)
    model = nnx.merge(graphdef, params)
    embeddings = np.asarray(model(jnp.asarray(data["x_test"])))
    return np.asarray(jnp.stack(losses)), recall_at_1(embeddings, data["y_test"])


def plot(curves: dict[str, np.ndarray], path: Any) -> None:
    plt = common.pyplot()
    fig, (ax, ax_diff) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.arange(1, len(next(iter(curves.values()))) + 1)
    for (name, curve), color, style in zip(curves.items(), ("C0", "C1", "C3"),
                                           ("-", "--", "-"), strict=True):
        ax.plot(steps, curve, style, color=color, label=name, lw=1.4)
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss (as each run computes it)")
    ax.legend()
    diff = np.abs(curves["8 devices, axis_name"] - curves["one device"])
    exact = diff == 0
    ax_diff.semilogy(steps[~exact], diff[~exact], ".", color="C1", ms=3,
                     label=f"differs ({(~exact).sum()} steps)")
    ax_diff.axhline(float(np.finfo(np.float32).eps), color="k", ls="--", lw=1,
                    label="float32 machine epsilon")
    ax_diff.set_xlabel("step")
    ax_diff.set_ylabel("|sharded − one device| (loss)")
    ax_diff.set_title(f"axis_name: equal up to round-off ({exact.sum()} steps exactly equal)",
                      fontsize=10)
    ax_diff.legend(fontsize=8)
    common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the equality rows, the training curves and recalls."""
    args = parse_args(argv)
    start = time.perf_counter()
    devices = jax.devices()
    if len(devices) < 2:
        raise SystemExit("this example needs several devices: set XLA_FLAGS="
                         "--xla_force_host_platform_device_count=8 before importing JAX")
    mesh = Mesh(np.array(devices[:8]), ("data",))
    print(f"{len(devices)} devices ({devices[0].platform}); mesh axis 'data' of "
          f"{mesh.shape['data']}")

    rows = check_equality(mesh, args.seed)
    common.print_table(
        "1. Value and gradient: one device vs 8 devices with axis_name (differences: round-off),"
        "\n   and 8 devices without axis_name (each device's own shard, averaged): not the same "
        "loss",
        "loss", ["one device", "sharded", "|Δ value|", "|Δ grad|max", "no axis_name"],
        [(name, [r["single"], r["sharded"], r["value_diff"], r["grad_diff"], r["naive"]])
         for name, r in rows.items()], formats=[".5f", ".5f", ".1e", ".1e", ".5f"])

    data = make_data(args.seed)
    model = common.init_model(lambda: Embedder(nnx.Rngs(args.seed)))
    graphdef, params = nnx.split(model)
    schedule = common.batch_schedule(args.seed, len(data["y_train"]), args.batch_size,
                                     args.steps)
    curves, recalls = {}, {}
    for mode in ("one device", "8 devices, axis_name", "8 devices, no axis_name"):
        curves[mode], recalls[mode] = train(mode, mesh, graphdef, params, data, schedule,
                                            args.temperature)
    untrained = recall_at_1(np.asarray(model(jnp.asarray(data["x_test"]))), data["y_test"])
    raw = recall_at_1(data["x_test"], data["y_test"])
    common.print_table(
        f"2. Training with NT-Xent, global batch {args.batch_size}, {args.steps} steps: "
        "held-out recall@1 (higher is better)",
        "run", ["final loss", "recall@1"],
        [("raw inputs (baseline)", ["", raw]), ("untrained network", ["", untrained]),
         *[(mode, [float(curves[mode][-10:].mean()), recalls[mode]]) for mode in curves]],
        formats=[".4f", ".3f"])
    gap = float(np.max(np.abs(curves["8 devices, axis_name"] - curves["one device"])))
    print(f"\nThe sharded run with axis_name follows the one-device run (largest loss "
          f"difference over the run: {gap:.1e}, float32 round-off). Without axis_name each "
          f"device contrasts only its {args.batch_size // mesh.shape['data']} samples: its "
          f"loss is another function, and its recall@1 is "
          f"{recalls['8 devices, no axis_name']:.3f} against "
          f"{recalls['8 devices, axis_name']:.3f}.")

    path = args.out / "sharded_training.png"
    plot(curves, path)
    print(f"saved {path} ({time.perf_counter() - start:.0f} s)")
    return {"equality": rows, "curves": curves, "recalls": recalls, "raw": raw,
            "untrained": untrained, "png": path}


if __name__ == "__main__":
    main()
