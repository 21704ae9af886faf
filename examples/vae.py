"""VAE: a small Flax NNX variational autoencoder on digits with ``jaxloss.gaussian_kl_loss``.

The data is scikit-learn's 8x8 handwritten digits (shipped inside the
package, no download), grey levels scaled to [0, 1] and flattened to 64
values; 80% train, 20% held out. The model (Kingma & Welling, "Auto-Encoding
Variational Bayes", 2014) is a pair of MLPs:

* the encoder maps an image ``x`` to the mean and log-variance of a diagonal
  Gaussian ``q(z | x)`` over an 8-dimensional latent ``z``;
* the decoder maps ``z`` to 64 Bernoulli logits, ``p(x | z)``.

Each step draws ``z = mean + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``
(the reparameterisation trick, so the gradient flows through the sample) and
minimises the negative evidence lower bound, per image

    -ELBO = reconstruction + KL
    reconstruction = sum over the 64 pixels of
                     jaxloss.binary_cross_entropy_loss(logits, x, reduction="none")
    KL = jaxloss.gaussian_kl_loss(mean, logvar, reduction="none")
       = KL(q(z | x) || N(0, I)), in closed form

averaged over the batch, with Adam. ``--beta`` weights the KL term (a
beta-VAE, Higgins et al. 2017; 1 is the plain ELBO, which is what is printed
either way). The grey levels are used as the Bernoulli targets directly, as
is common; that is a cross-entropy against soft targets rather than the
likelihood of a proper model of grey levels (see the continuous Bernoulli of
Loaiza-Ganem & Cunningham, 2019), so the reconstruction term cannot reach 0:
its floor is the summed entropy of the targets, printed at the start.

It prints the ELBO terms (in nats per image) for every epoch, on the training
batches and on the held-out images, and saves one PNG with the curves, a row
of held-out digits above their reconstructions (decoder probabilities at the
posterior mean) and a grid of samples from the prior (decoder probabilities at
``z ~ N(0, I)``).

Run it with::

    python examples/vae.py                  # ~15-30 s on 2 CPU cores
    python examples/vae.py --smoke          # 4 epochs: checks that it runs end to end
    python examples/vae.py --epochs 60 --latent-dim 2 --beta 0.5 --seed 1 --out /tmp/vae
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

SIDE = 8  # digits are SIDE x SIDE grey images
PIXELS = SIDE * SIDE
SMOKE = {"epochs": 4}  # --smoke: the tests' quick run (the -ELBO already falls clearly)
COLUMNS = ("train recon", "train KL", "train -ELBO", "test recon", "test KL", "test -ELBO")

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def load_data(seed: int, test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Digits as float32 vectors ``[N, 64]`` in [0, 1], split stratified by class."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32).reshape(-1, PIXELS)
    x_train, x_test = train_test_split(images, test_size=test_fraction,
                                       stratify=digits.target, random_state=seed)
    return {"x_train": x_train, "x_test": x_test}


def target_entropy(images: np.ndarray) -> float:
    """Mean over images of the summed Bernoulli entropy of the grey levels (nats): the
    smallest reconstruction term any decoder can reach on these soft targets."""
    p = np.clip(images.astype(np.float64), 1e-12, 1.0 - 1e-12)
    return float(np.mean(np.sum(-(p * np.log(p) + (1.0 - p) * np.log1p(-p)), axis=-1)))


# ----------------------------------------------------------------------------- model


class VAE(nnx.Module):
    """MLP encoder ``64 -> hidden -> (mean, logvar)`` and decoder ``latent -> hidden -> 64``
    logits."""

    def __init__(self, latent_dim: int = 8, hidden: int = 128, *, rngs: nnx.Rngs) -> None:
        self.enc = nnx.Linear(PIXELS, hidden, rngs=rngs)
        self.enc_mean = nnx.Linear(hidden, latent_dim, rngs=rngs)
        self.enc_logvar = nnx.Linear(hidden, latent_dim, rngs=rngs)
        self.dec = nnx.Linear(latent_dim, hidden, rngs=rngs)
        self.dec_out = nnx.Linear(hidden, PIXELS, rngs=rngs)
        self.latent_dim = latent_dim

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [N, 64] -> 2 x [N, d]
        h = nnx.relu(self.enc(x))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:  # [N, d] -> logits [N, 64]
        return self.dec_out(nnx.relu(self.dec(z)))


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """``z = mean + sigma * eps``, ``eps ~ N(0, I)``: a sample of ``q(z | x)`` that is a
    differentiable function of ``mean`` and ``logvar``."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


def elbo_terms(model: VAE, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-image reconstruction term and KL term (nats), one latent sample per image."""
    mean, logvar = model.encode(x)
    logits = model.decode(reparameterize(key, mean, logvar))
    reconstruction = jnp.sum(
        jaxloss.binary_cross_entropy_loss(logits, x, reduction="none"), axis=-1)  # [N]
    kl = jaxloss.gaussian_kl_loss(mean, logvar, reduction="none")  # [N]
    return reconstruction, kl


def make_train_step(beta: float) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A jitted step ``(model, optimizer, x, key)`` on ``mean(reconstruction + beta * KL)``;
    returns the batch means of the two terms."""

    def objective(model: VAE, x: jax.Array,
                  key: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        reconstruction, kl = elbo_terms(model, x, key)
        loss = jnp.mean(reconstruction) + beta * jnp.mean(kl)
        return loss, (jnp.mean(reconstruction), jnp.mean(kl))

    return common.make_train_step(objective, takes_model=True, has_aux=True)


@nnx.jit
def evaluate(model: VAE, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean reconstruction and KL terms over ``x`` (one latent sample per image)."""
    reconstruction, kl = elbo_terms(model, x, key)
    return jnp.mean(reconstruction), jnp.mean(kl)


@nnx.jit
def reconstruct(model: VAE, x: jax.Array) -> jax.Array:
    """Decoder probabilities at the posterior mean."""
    mean, _ = model.encode(x)
    return jax.nn.sigmoid(model.decode(mean))


def sample_prior(model: VAE, key: jax.Array, count: int) -> jax.Array:
    """Decoder probabilities at ``count`` draws of ``z ~ N(0, I)``."""
    return decode_probabilities(model, jax.random.normal(key, (count, model.latent_dim)))


@nnx.jit
def decode_probabilities(model: VAE, z: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(model.decode(z))


def train(data: dict[str, np.ndarray], *, epochs: int, batch_size: int, latent_dim: int,
          hidden: int, beta: float, learning_rate: float,
          seed: int) -> tuple[VAE, list[dict[str, float]]]:
    """Trains the VAE; prints and returns the ELBO terms of every epoch."""
    model = common.init_model(lambda: VAE(latent_dim, hidden, rngs=nnx.Rngs(seed)))
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    step_fn = make_train_step(beta)
    x_train, x_test = jnp.asarray(data["x_train"]), jnp.asarray(data["x_test"])
    index_stream = common.batches(np.random.default_rng(seed), len(x_train), batch_size)
    steps_per_epoch = len(x_train) // min(batch_size, len(x_train))
    key = jax.random.key(seed)
    history: list[dict[str, float]] = []
    table = common.Table("epoch", COLUMNS, label_width=5)
    print(f"\n{table.header}")
    for epoch in range(1, epochs + 1):
        terms = []
        for _ in range(steps_per_epoch):
            key, step_key = jax.random.split(key)
            index = jnp.asarray(next(index_stream))
            terms.append(step_fn(model, optimizer, x_train[index], step_key))
        recon, kl = (float(v) for v in np.mean(np.asarray(jax.device_get(terms)), axis=0))
        key, eval_key = jax.random.split(key)
        test_recon, test_kl = (float(v) for v in evaluate(model, x_test, eval_key))
        history.append({"epoch": epoch, "recon": recon, "kl": kl, "loss": recon + kl,
                        "test_recon": test_recon, "test_kl": test_kl,
                        "test_loss": test_recon + test_kl})
        print(table.row(f"{epoch:>5}", [recon, kl, recon + kl, test_recon, test_kl,
                                        test_recon + test_kl]))
    return model, history


# ----------------------------------------------------------------------------- report


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """``[N, 64]`` images -> one ``[rows * 9 - 1, columns * 9 - 1]`` mosaic with 1 px gaps
    (NaN, drawn in the colour map's "bad" colour)."""
    rows = -(-len(images) // columns)
    mosaic = np.full((rows * (SIDE + 1) - 1, columns * (SIDE + 1) - 1), np.nan, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * (SIDE + 1):r * (SIDE + 1) + SIDE,
               c * (SIDE + 1):c * (SIDE + 1) + SIDE] = image.reshape(SIDE, SIDE)
    return mosaic


def plot(history: list[dict[str, float]], originals: np.ndarray, reconstructions: np.ndarray,
         samples: np.ndarray, path: Path, floor: float) -> None:
    plt = common.pyplot()
    fig = plt.figure(figsize=(13, 4.6))
    grid = fig.add_gridspec(1, 3, width_ratios=(1.25, 1.25, 1.0))
    ax = fig.add_subplot(grid[0])
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], color="C0", label="-ELBO (train)")
    ax.plot(epochs, [h["test_loss"] for h in history], "--", color="C0", label="-ELBO (test)")
    ax.plot(epochs, [h["recon"] for h in history], color="C1", label="reconstruction (train)")
    ax.plot(epochs, [h["kl"] for h in history], color="C2", label="KL (train)")
    ax.axhline(floor, color="0.5", linewidth=0.8, linestyle=":",
               label="reconstruction floor (target entropy)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.set_title("ELBO terms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    cmap = plt.get_cmap("gray_r").with_extremes(bad="#9ab")  # white background, grey gaps
    columns = 10
    pairs = np.concatenate([originals[:columns], reconstructions[:columns],
                            originals[columns:2 * columns],
                            reconstructions[columns:2 * columns]])
    ax = fig.add_subplot(grid[1])
    ax.imshow(tile(pairs, columns), cmap=cmap, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_title("held-out digits (rows 1, 3) and reconstructions (rows 2, 4)", fontsize=10)
    ax.axis("off")

    ax = fig.add_subplot(grid[2])
    ax.imshow(tile(samples, 8), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title("samples from the prior, z ~ N(0, I)", fontsize=10)
    ax.axis("off")
    common.save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128, help="width of the hidden layers")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="weight of the KL term in the training objective (1: the ELBO)")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="vae_samples.png",
                             positive=("epochs", "batch_size", "latent_dim", "hidden"))
    if not args.beta >= 0.0:
        parser.error("--beta must be >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the per-epoch ELBO terms and the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = load_data(args.seed)
    floor = target_entropy(data["x_train"])
    print(f"digits: {len(data['x_train'])} training and {len(data['x_test'])} held-out 8x8 "
          f"images; latent dim {args.latent_dim}, beta {args.beta:g}; reconstruction floor "
          f"(summed entropy of the grey levels) {floor:.2f} nats per image")
    model, history = train(data, epochs=args.epochs, batch_size=args.batch_size,
                           latent_dim=args.latent_dim, hidden=args.hidden, beta=args.beta,
                           learning_rate=args.learning_rate, seed=args.seed)
    originals = data["x_test"][:20]
    reconstructions = np.asarray(reconstruct(model, jnp.asarray(originals)))
    samples = np.asarray(sample_prior(model, jax.random.key(args.seed + 1), 64))

    path = args.out / "vae_samples.png"
    plot(history, originals, reconstructions, samples, path, floor)
    common.print_done(start, {"the curves, reconstructions and prior samples": path})
    return {"history": history, "png": path, "reconstruction_floor": floor}


if __name__ == "__main__":
    main()
