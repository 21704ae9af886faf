"""Image restoration: a small Flax NNX denoiser trained with L2, L1 + SSIM and Charbonnier.

The data is scikit-learn's two sample photographs, ``china.jpg`` and
``flower.jpg`` (``load_sample_images()``, shipped inside the package, no
download; 427x640 RGB). Training uses random crops from the left 440 columns
of both, with fresh additive white Gaussian noise at every step (``--sigma``,
0.1 on the [0, 1] scale by default, i.e. about 20 dB PSNR); the evaluation
uses crops of their right 200 columns, never seen in training, with one fixed
noise draw. (Holding out a region of each photo rather than a whole photo
matters: ``flower.jpg`` is mostly smooth, out-of-focus background, which
``china.jpg`` lacks, and SSIM on such flat regions reacts strongly to the
faint residual noise a model trained on the other photo leaves there.)

The denoiser is a small residual network in the style of DnCNN (Zhang et al.
2017): a stack of 3x3 convolutions with ReLU that predicts the noise, which
is then subtracted from the input (its last layer starts at zero, so every
model starts as the identity). The same network, from the same
initialisation and on the same noisy batches, is trained three times with
the same number of Adam steps:

1. **L2** -- ``jaxloss.mse_loss``, the loss PSNR measures;
2. **L1 + SSIM** -- ``0.16 * jaxloss.mae_loss + 0.84 * jaxloss.ssim_loss``,
   the mixture of Zhao et al. ("Loss Functions for Image Restoration with
   Neural Networks", 2017, alpha = 0.84). They mix L1 with MS-SSIM; the crops
   here are too small for five scales, so this uses single-scale SSIM
   (``ssim_loss`` is ``1 - SSIM``) and a plain, not Gaussian-weighted, L1;
3. **Charbonnier** -- ``jaxloss.charbonnier_loss`` (``eps = 1e-3``), the
   smooth L1 that most restoration networks are trained with.

At the end it prints the held-out PSNR and SSIM of the noisy input and of
each model (both computed with jaxloss: ``-psnr_loss`` and ``1 - ssim_loss``
on the outputs clipped to [0, 1]) and saves a grid of held-out crops
(noisy | L2 | L1+SSIM | Charbonnier | clean) as a PNG. With the defaults
every model gains 8-10 dB over the noisy input; Charbonnier ends with the
best PSNR (as Zhao et al. found, an L1-type loss beats L2 even on the metric
L2 optimises) and L1 + SSIM with the clearly best SSIM.

Run it with::

    python examples/image_restoration.py              # ~30-60 s on 2 CPU cores
    python examples/image_restoration.py --smoke      # 100 steps of a narrow network, small crops
    python examples/image_restoration.py --steps 600 --sigma 0.2 --seed 1 --out /tmp/ir
"""

from __future__ import annotations

import argparse
import itertools
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
from sklearn.datasets import load_sample_images

PHOTOS = ("china.jpg", "flower.jpg")  # scikit-learn's sample photographs
HOLDOUT_COLUMNS = 200  # the right 200 of the 640 columns of each photo are held out
METHODS = ("L2", "L1+SSIM", "Charbonnier")
SSIM_WEIGHT = 0.84  # Zhao et al. 2017's alpha: 0.84 * (1 - SSIM) + 0.16 * L1
# --smoke: the tests' quick run, a narrow network on small crops; 100 steps lift every model
# clearly above the noisy input
SMOKE = {"steps": 100, "batch_size": 8, "crop": 24, "train_crops": 256, "test_crops": 4,
         "test_crop": 48, "channels": 8, "depth": 3, "learning_rate": 3e-3, "show": 2}

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def load_photos() -> dict[str, np.ndarray]:
    """scikit-learn's sample photographs as float32 ``[H, W, 3]`` arrays in [0, 1], by file name."""
    photos = load_sample_images()
    return {Path(name).name: (image.astype(np.float32) / 255.0)
            for name, image in zip(photos.filenames, photos.images, strict=True)}


def random_crops(image: np.ndarray, count: int, size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``size x size`` crops of ``image`` ``[H, W, C]``: ``[count, size, size,
    C]``."""
    height, width = image.shape[:2]
    if size > min(height, width):
        raise ValueError(f"crop size {size} exceeds the image ({height}x{width})")
    top = rng.integers(0, height - size + 1, count)
    left = rng.integers(0, width - size + 1, count)
    return np.stack([image[t:t + size, s:s + size] for t, s in zip(top, left, strict=True)])


def make_data(seed: int, *, train_crops: int, crop: int, test_crops: int, test_crop: int,
              sigma: float) -> dict[str, np.ndarray]:
    """Clean training crops from the left part of both photographs (noise is drawn per
    step), and clean + noisy held-out crops (one fixed noise draw) from their right
    HOLDOUT_COLUMNS columns, ``test_crops`` per photograph, interleaved (china, flower, ...)."""
    photos = load_photos()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for name in PHOTOS:
        split = photos[name].shape[1] - HOLDOUT_COLUMNS
        train.append(random_crops(photos[name][:, :split], -(-train_crops // 2), crop, rng))
        test.append(random_crops(photos[name][:, split:], test_crops, test_crop, rng))
    x_train = np.concatenate(train)[:train_crops]
    clean_test = np.stack(test, axis=1).reshape(-1, test_crop, test_crop, 3)
    noisy_test = clean_test + sigma * rng.standard_normal(clean_test.shape).astype(np.float32)
    return {"x_train": x_train, "clean_test": clean_test, "noisy_test": noisy_test}


# ----------------------------------------------------------------------------- model


class Denoiser(nnx.Module):
    """``depth`` 3x3 convolutions (ReLU between them) predicting the noise; returns
    ``noisy - noise`` (residual learning, Zhang et al. 2017). The last layer starts at zero,
    so an untrained model is the identity."""

    def __init__(self, channels: int = 32, depth: int = 4, *, rngs: nnx.Rngs) -> None:
        if depth < 2:
            raise ValueError("depth must be >= 2")
        widths = [3] + [channels] * (depth - 1)
        self.hidden = nnx.List([nnx.Conv(a, b, kernel_size=(3, 3), rngs=rngs)
                                for a, b in itertools.pairwise(widths)])
        self.out = nnx.Conv(channels, 3, kernel_size=(3, 3),
                            kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, noisy: jax.Array) -> jax.Array:  # [N, H, W, 3] -> [N, H, W, 3]
        x = noisy
        for conv in self.hidden:
            x = nnx.relu(conv(x))
        return noisy - self.out(x)


# ----------------------------------------------------------------------------- training

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def l2(denoised: jax.Array, clean: jax.Array) -> jax.Array:
    return jaxloss.mse_loss(denoised, clean)


def l1_ssim(denoised: jax.Array, clean: jax.Array) -> jax.Array:
    return ((1.0 - SSIM_WEIGHT) * jaxloss.mae_loss(denoised, clean)
            + SSIM_WEIGHT * jaxloss.ssim_loss(denoised, clean))


def charbonnier(denoised: jax.Array, clean: jax.Array) -> jax.Array:
    return jaxloss.charbonnier_loss(denoised, clean, eps=1e-3)


LOSSES: dict[str, LossFn] = {"L2": l2, "L1+SSIM": l1_ssim, "Charbonnier": charbonnier}


@nnx.jit
def denoise(model: Denoiser, noisy: jax.Array) -> jax.Array:
    return jnp.clip(model(noisy), 0.0, 1.0)


def train(data: dict[str, np.ndarray], *, steps: int, batch_size: int, sigma: float,
          seed: int, learning_rate: float, channels: int,
          depth: int) -> tuple[dict[str, Denoiser], dict[str, np.ndarray]]:
    """Trains one model per loss, in lock-step on the same noisy batches; returns the models
    and their training-loss curves."""
    models, optimizers, step_fns, losses = {}, {}, {}, {}
    schedule = optax.cosine_decay_schedule(learning_rate, steps)
    initial = common.init_model(lambda: Denoiser(channels, depth, rngs=nnx.Rngs(seed)))
    for name, loss_fn in LOSSES.items():
        models[name] = nnx.clone(initial)  # the same initialisation for every loss
        optimizers[name] = nnx.Optimizer(models[name], optax.adam(schedule), wrt=nnx.Param)
        step_fns[name] = common.make_train_step(loss_fn)  # loss_fn(model(noisy), clean)
        losses[name] = []
    rng = np.random.default_rng(seed + 1)
    x_train = data["x_train"]
    with common.progress(range(steps), "L2, L1+SSIM, Charbonnier") as bar:
        for step in bar:
            clean_np = x_train[rng.integers(0, len(x_train), batch_size)]
            noise = sigma * rng.standard_normal(clean_np.shape).astype(np.float32)
            clean, noisy = jnp.asarray(clean_np), jnp.asarray(clean_np + noise)
            for name in LOSSES:
                losses[name].append(step_fns[name](models[name], optimizers[name], noisy, clean))
            if step % 25 == 0 or step == steps - 1:
                bar.set_postfix({name: f"{float(losses[name][-1]):.4f}" for name in LOSSES})
    curves = {name: np.asarray(jax.device_get(values), dtype=np.float64)
              for name, values in losses.items()}
    return models, curves


# ----------------------------------------------------------------------------- evaluation


def quality(images: jax.Array, clean: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of ``images`` against ``clean``, with jaxloss."""
    psnr = -jaxloss.psnr_loss(images, clean, max_val=1.0, reduction="none")
    ssim = 1.0 - jaxloss.ssim_loss(images, clean, max_val=1.0, reduction="none")
    return np.asarray(psnr, dtype=np.float64), np.asarray(ssim, dtype=np.float64)


def evaluate(models: dict[str, Denoiser],
             data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """The held-out outputs (clipped to [0, 1]) and their per-crop PSNR and SSIM, the noisy
    input first."""
    clean = jnp.asarray(data["clean_test"])
    noisy = jnp.asarray(data["noisy_test"])
    outputs = {"noisy input": jnp.clip(noisy, 0.0, 1.0)}
    outputs.update({name: denoise(model, noisy) for name, model in models.items()})
    scores = {}
    for name, images in outputs.items():
        psnr, ssim = quality(images, clean)
        scores[name] = {"psnr": psnr, "ssim": ssim}
    return {name: np.asarray(v) for name, v in outputs.items()}, scores


# ----------------------------------------------------------------------------- report


def report(scores: dict[str, dict[str, np.ndarray]], test_crops: int, test_crop: int,
           sigma: float) -> None:
    """The held-out PSNR and SSIM of the noisy input and every model, and the PSNR gain."""
    base = float(np.mean(scores["noisy input"]["psnr"]))
    rows = []
    for name, s in scores.items():
        psnr, ssim = float(np.mean(s["psnr"])), float(np.mean(s["ssim"]))
        rows.append((name, [psnr, ssim, psnr - base]))
    common.print_table(
        f"Held-out region (right {HOLDOUT_COLUMNS} columns) of {' and '.join(PHOTOS)}: "
        f"{test_crops} crops of {test_crop}x{test_crop} each, noise sigma {sigma:g}, "
        "outputs clipped to [0, 1] (mean over crops)",
        "model", ["PSNR (dB)", "SSIM", "ΔPSNR"], rows, formats=[".2f", ".4f", "+.2f"])


def plot_crops(outputs: dict[str, np.ndarray], clean: np.ndarray,
               scores: dict[str, dict[str, np.ndarray]], path: Path, rows: int) -> None:
    columns = [*outputs, "clean"]
    rows = max(1, min(rows, len(clean)))
    fig, axes = common.pyplot().subplots(rows, len(columns), squeeze=False,
                                         figsize=(2.4 * len(columns), 2.5 * rows))
    for r in range(rows):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            image = clean[r] if name == "clean" else outputs[name][r]
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if name != "clean":
                ax.set_xlabel(f"{scores[name]['psnr'][r]:.2f} dB, "
                              f"SSIM {scores[name]['ssim'][r]:.3f}", fontsize=8)
            if r == 0:
                ax.set_title(name.replace(" input", ""))
    fig.suptitle("Held-out crops (PSNR, SSIM against the clean crop)")
    common.save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per loss")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--crop", type=int, default=40, help="training crop size (pixels)")
    parser.add_argument("--train-crops", type=int, default=2048,
                        help="pool of clean training crops (noise is drawn per step)")
    parser.add_argument("--test-crops", type=int, default=16,
                        help="held-out crops per photograph")
    parser.add_argument("--test-crop", type=int, default=96, help="held-out crop size")
    parser.add_argument("--sigma", type=float, default=0.1,
                        help="standard deviation of the Gaussian noise on the [0, 1] scale")
    parser.add_argument("--channels", type=int, default=24, help="width of the hidden layers")
    parser.add_argument("--depth", type=int, default=4, help="number of 3x3 convolutions")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="initial Adam learning rate (cosine decay to 0 over --steps)")
    parser.add_argument("--show", type=int, default=4, help="held-out crops in the PNG")
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="image_restoration_crops.png",
                             positive=("steps", "batch_size", "train_crops", "test_crops",
                                       "channels", "show"))
    if args.depth < 2:
        parser.error("--depth must be >= 2")
    if min(args.crop, args.test_crop) < 11:
        parser.error("--crop and --test-crop must be >= 11 (the SSIM window)")
    if not args.sigma > 0.0:
        parser.error("--sigma must be > 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the held-out metrics (mean PSNR and SSIM per row of the
    table), the training-loss curves and the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = make_data(args.seed, train_crops=args.train_crops, crop=args.crop,
                     test_crops=args.test_crops, test_crop=args.test_crop, sigma=args.sigma)
    print(f"training: {len(data['x_train'])} crops {args.crop}x{args.crop} of the left parts "
          f"of {' and '.join(PHOTOS)}, fresh noise (sigma {args.sigma:g}) every step; held "
          f"out: {len(data['clean_test'])} crops {args.test_crop}x{args.test_crop} of their "
          f"right {HOLDOUT_COLUMNS} columns")
    models, curves = train(data, steps=args.steps, batch_size=args.batch_size,
                           sigma=args.sigma, seed=args.seed, learning_rate=args.learning_rate,
                           channels=args.channels, depth=args.depth)
    outputs, scores = evaluate(models, data)
    report(scores, args.test_crops, args.test_crop, args.sigma)

    path = args.out / "image_restoration_crops.png"
    plot_crops(outputs, data["clean_test"], scores, path, args.show)
    common.print_done(start, {"the held-out crops": path})
    metrics = {name: {"psnr": float(np.mean(s["psnr"])), "ssim": float(np.mean(s["ssim"]))}
               for name, s in scores.items()}
    return {"metrics": metrics, "losses": curves, "png": path}


if __name__ == "__main__":
    main()
