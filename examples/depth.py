"""Monocular depth with an unknown scale: a Flax NNX U-Net trained with L1, SILog and MiDaS's loss.

The data is generated: each scene is a ground plane (a checkerboard), a back
wall (stripes) and one to three spheres resting on the ground, ray-cast from
a pinhole camera at a random height (``render_scene``), with Lambertian
shading. The ground-truth depth of every image is multiplied by its own
random factor, log-uniform in [1/3, 3] and unknown to the network: like
depth from datasets with different cameras and units (MiDaS's mixed
training sets), or disparity up to an unknown baseline. Nothing in the image
says what the factor is, so only the depth *up to scale* can be learned.

The same small U-Net, from the same initialisation and on the same batches,
is trained three times with the same number of Adam steps:

1. **L1** -- ``jaxloss.mae_loss`` on the scaled depth: it has to guess each
   image's factor and is pulled around by it;
2. **SILog** -- ``jaxloss.silog_loss`` (Eigen et al. 2014, ``lambda = 0.85``):
   a log-depth loss that ignores most of a global scale;
3. **SSI** -- ``jaxloss.scale_shift_invariant_loss`` (Ranftl et al. 2020,
   MiDaS): the prediction is aligned to the target by a per-image
   least-squares scale and shift before the error and the multi-scale
   gradient-matching term are measured.

The network predicts ``softplus(x) + 0.01``, positive for SILog's
logarithm. At the end it prints, on held-out scenes, the scale-invariant
errors: AbsRel ``mean |d - d*| / d*`` after per-image median scaling (the
prediction times ``median(d*) / median(d)``, the usual protocol for
scale-ambiguous depth), AbsRel after a per-image least-squares scale and
shift (MiDaS's protocol, the one that suits an affine-invariant loss: SSI
leaves the shift of its predictions free, which median scaling cannot
undo), and the share of pixels within 25% (delta < 1.25, after median
scaling). Lower AbsRel, higher delta is better. SILog beats L1 under median
scaling, and both scale-invariant losses beat L1 under scale-and-shift
alignment; it saves a PNG of held-out images with their true and predicted
depth maps (aligned by scale and shift).

Run it with::

    python examples/depth.py              # ~1-2 min on 2 CPU cores
    python examples/depth.py --smoke      # a short run of a narrow network
    python examples/depth.py --steps 1200 --seed 1 --out /tmp/depth
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

METHODS = ("L1", "SILog", "SSI")
SCALE_RANGE = (1.0 / 3.0, 3.0)  # the unknown per-image factor of the ground truth, log-uniform
# --smoke: the tests' quick run
SMOKE = {"steps": 100, "batch_size": 16, "size": 16, "train_images": 256, "test_images": 32,
         "channels": 8, "learning_rate": 3e-3, "show": 2}

jaxloss = common.import_jaxloss()


# ----------------------------------------------------------------------------- data


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One random scene ray-cast at ``size x size``: ``(image [H, W, 3] in [0, 1], depth [H, W])``,
    depth being the distance along the optical axis (z)."""
    v, u = np.meshgrid(np.linspace(0.5, -0.5, size), np.linspace(-0.5, 0.5, size),
                       indexing="ij")
    rays = np.stack([u, v, np.ones_like(u)], axis=-1)  # [H, W, 3], z = 1: t is the z-depth
    height = rng.uniform(0.8, 1.6)  # camera above the ground plane y = -height
    wall = rng.uniform(7.0, 12.0)  # back wall z = wall
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, -rng.uniform(0.3, 1.0)])
    light /= np.linalg.norm(light)

    depth = np.full(u.shape, wall)  # the wall everywhere first
    normal = np.broadcast_to(np.array([0.0, 0.0, -1.0]), rays.shape).copy()
    hit_ground = v < 0
    t_ground = np.where(hit_ground, height / np.maximum(-v, 1e-9), np.inf)
    closer = t_ground < depth
    depth = np.where(closer, t_ground, depth)
    normal[closer] = (0.0, 1.0, 0.0)
    kind = np.where(closer, 1, 0)  # 0 wall, 1 ground, 2 + k sphere k
    colors = [rng.uniform(0.3, 1.0, 3), rng.uniform(0.3, 1.0, 3)]
    for k in range(rng.integers(1, 4)):  # spheres resting on the ground
        radius = rng.uniform(0.4, 1.0)
        center = np.array([rng.uniform(-1.8, 1.8), -height + radius,
                           rng.uniform(3.0, wall - radius - 0.5)])
        b = rays @ center  # ray-sphere intersection, |t r - c|^2 = radius^2
        a = np.sum(rays * rays, axis=-1)
        disc = b * b - a * (center @ center - radius * radius)
        t_sphere = np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0.0))) / a, np.inf)
        closer = (t_sphere > 0) & (t_sphere < depth)
        depth = np.where(closer, t_sphere, depth)
        points = rays * depth[..., None]
        normal[closer] = (points[closer] - center) / radius
        kind = np.where(closer, 2 + k, kind)
        colors.append(rng.uniform(0.2, 1.0, 3))

    points = rays * depth[..., None]
    checker = (np.floor(points[..., 0] * 2.0) + np.floor(points[..., 2] * 2.0)) % 2  # ground
    stripes = (np.floor(points[..., 0] * 3.0) % 2)  # wall
    texture = np.where(kind == 1, 0.55 + 0.45 * checker,
                       np.where(kind == 0, 0.7 + 0.3 * stripes, 1.0))
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0.0, 1.0)
    albedo = np.stack(colors)[kind]  # [H, W, 3]
    image = albedo * (texture * shade)[..., None]
    return image.astype(np.float32), depth.astype(np.float32)


def make_data(seed: int, *, train_images: int, test_images: int,
              size: int) -> dict[str, np.ndarray]:
    """Rendered scenes (``[N, H, W, 3]``), their true depth and the scaled ground truth that
    training sees (``[N, H, W, 1]``, each image times its own unknown factor)."""
    rng = np.random.default_rng(seed)
    total = train_images + test_images
    scenes = [render_scene(rng, size) for _ in range(total)]
    images = np.stack([s[0] for s in scenes])
    depth = np.stack([s[1] for s in scenes])[..., None]
    log_low, log_high = np.log(SCALE_RANGE)
    factor = np.exp(rng.uniform(log_low, log_high, (total, 1, 1, 1))).astype(np.float32)
    targets = depth * factor
    return {"x_train": images[:train_images], "y_train": targets[:train_images],
            "x_test": images[train_images:], "y_test": targets[train_images:]}


# ----------------------------------------------------------------------------- model


class UNet(nnx.Module):
    """A two-level U-Net: 3x3 convolutions (ReLU), 2x2 average pooling down, nearest-neighbour
    upsampling and skip concatenation up; a 1x1 head gives ``softplus(x) + 0.01``."""

    def __init__(self, channels: int = 16, *, rngs: nnx.Rngs) -> None:
        c = channels

        def conv(a: int, b: int) -> nnx.Conv:
            return nnx.Conv(a, b, kernel_size=(3, 3), rngs=rngs)

        self.enc1 = nnx.List([conv(3, c), conv(c, c)])
        self.enc2 = nnx.List([conv(c, 2 * c), conv(2 * c, 2 * c)])
        self.mid = nnx.List([conv(2 * c, 4 * c), conv(4 * c, 4 * c)])
        self.dec2 = nnx.List([conv(6 * c, 2 * c), conv(2 * c, 2 * c)])
        self.dec1 = nnx.List([conv(3 * c, c), conv(c, c)])
        self.head = nnx.Conv(c, 1, kernel_size=(1, 1), rngs=rngs)

    @staticmethod
    def _block(convs: nnx.List, x: jax.Array) -> jax.Array:
        for conv in convs:
            x = nnx.relu(conv(x))
        return x

    def __call__(self, images: jax.Array) -> jax.Array:  # [N, H, W, 3] -> [N, H, W, 1]
        def down(x: jax.Array) -> jax.Array:
            return nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))

        def up(x: jax.Array) -> jax.Array:
            return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)

        e1 = self._block(self.enc1, images)
        e2 = self._block(self.enc2, down(e1))
        m = self._block(self.mid, down(e2))
        d2 = self._block(self.dec2, jnp.concatenate([up(m), e2], axis=-1))
        d1 = self._block(self.dec1, jnp.concatenate([up(d2), e1], axis=-1))
        return nnx.softplus(self.head(d1)) + 0.01


# ----------------------------------------------------------------------------- training

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

LOSSES: dict[str, LossFn] = {
    "L1": lambda depth, target: jaxloss.mae_loss(depth, target),
    "SILog": lambda depth, target: jaxloss.silog_loss(depth, target),
    "SSI": lambda depth, target: jaxloss.scale_shift_invariant_loss(depth, target),
}


def train(data: dict[str, np.ndarray], *, steps: int, batch_size: int, seed: int,
          learning_rate: float, channels: int) -> dict[str, common.Run]:
    """One run per loss, in lock-step on the same batches, from the same initialisation."""
    initial = common.init_model(lambda: UNet(channels, rngs=nnx.Rngs(seed)))
    runs = {name: common.Run.adam(name, initial, loss_fn, learning_rate=learning_rate,
                                  steps=steps) for name, loss_fn in LOSSES.items()}
    schedule = common.batch_schedule(seed + 1, len(data["x_train"]), batch_size, steps)
    with common.progress(range(steps), ", ".join(METHODS)) as bar:
        for step, index in zip(bar, schedule, strict=True):
            images, targets = jnp.asarray(data["x_train"][index]), jnp.asarray(
                data["y_train"][index])
            for run in runs.values():
                run.losses.append(run.step_fn(run.model, run.optimizer, images, targets))
            if step % 25 == 0 or step == steps - 1:
                bar.set_postfix({name: f"{float(run.losses[-1]):.3f}"
                                 for name, run in runs.items()})
    return runs


# ----------------------------------------------------------------------------- evaluation


@nnx.jit
def predict(model: UNet, images: jax.Array) -> jax.Array:
    return model(images)


def median_scaled(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``prediction`` times ``median(target) / median(prediction)``, per image."""
    ratio = (np.median(target.reshape(len(target), -1), axis=1)
             / np.median(prediction.reshape(len(prediction), -1), axis=1))
    return prediction * ratio[:, None, None, None]


def least_squares_aligned(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``s * prediction + t`` with the per-image least-squares ``(s, t)`` (NumPy, float64)."""
    out = np.empty(prediction.shape, np.float64)
    for i, (p, t) in enumerate(zip(prediction, target, strict=True)):
        design = np.stack([p.ravel(), np.ones(p.size)], axis=1).astype(np.float64)
        (s, shift), *_ = np.linalg.lstsq(design, t.ravel().astype(np.float64), rcond=None)
        out[i] = s * p + shift
    return out


def abs_rel(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(prediction - target) / target))


def evaluate(runs: dict[str, common.Run],
             data: dict[str, np.ndarray]) -> tuple[dict[str, dict[str, float]],
                                                   dict[str, np.ndarray]]:
    """The held-out scale-invariant errors of every run, and its predictions aligned by scale
    and shift."""
    target = data["y_test"]
    metrics, predictions = {}, {}
    for name, run in runs.items():
        raw = np.asarray(predict(run.model, jnp.asarray(data["x_test"])), np.float64)
        scaled = median_scaled(raw, target)
        ratio = np.maximum(scaled / target, target / scaled)
        aligned = least_squares_aligned(raw, target)
        metrics[name] = {"abs_rel": abs_rel(scaled, target),
                         "abs_rel_lsq": abs_rel(aligned, target),
                         "delta1": float(np.mean(ratio < 1.25))}
        predictions[name] = aligned
    return metrics, predictions


# ----------------------------------------------------------------------------- report


def report(metrics: dict[str, dict[str, float]], test_images: int, size: int) -> None:
    rows = [(name, [m["abs_rel"], m["abs_rel_lsq"], m["delta1"]]) for name, m in metrics.items()]
    common.print_table(
        f"Held-out scenes ({test_images} images {size}x{size}, ground truth scaled by an unknown "
        f"factor in [{SCALE_RANGE[0]:.2f}, {SCALE_RANGE[1]:.0f}] per image)",
        "loss", ["AbsRel (median)", "AbsRel (scale+shift)", "delta<1.25"], rows,
        formats=[".4f", ".4f", ".3f"])
    best = {key: min(metrics, key=lambda name: metrics[name][key])
            for key in ("abs_rel", "abs_rel_lsq")}
    print("\nAbsRel = mean |d - d*| / d* after aligning each prediction to its ground truth "
          "(median ratio, or least-squares scale and shift); lower is better. delta<1.25 = "
          "share of pixels within 25% after median scaling; higher is better. SSI leaves the "
          "shift of its predictions free, so only the scale-and-shift column suits it.")
    print(f"Best AbsRel: {best['abs_rel']} (median scaling), {best['abs_rel_lsq']} (scale and "
          "shift). L1 must also guess each image's unknown factor; the scale-invariant losses "
          "(SILog, SSI) are not asked to.")


def plot_depth(images: np.ndarray, target: np.ndarray, predictions: dict[str, np.ndarray],
               path: Path, rows: int) -> None:
    columns = ["image", "ground truth", *predictions]
    rows = max(1, min(rows, len(images)))
    fig, axes = common.pyplot().subplots(rows, len(columns), squeeze=False,
                                         figsize=(2.2 * len(columns), 2.3 * rows))
    for r in range(rows):
        low, high = np.percentile(target[r], [1, 99])
        for c, name in enumerate(columns):
            ax = axes[r, c]
            if name == "image":
                ax.imshow(np.clip(images[r], 0.0, 1.0), interpolation="nearest")
            else:
                depth = target[r] if name == "ground truth" else predictions[name][r]
                ax.imshow(depth[..., 0], cmap="magma_r", vmin=low, vmax=high,
                          interpolation="nearest")
                if name != "ground truth":
                    ax.set_xlabel(f"AbsRel {abs_rel(depth, target[r]):.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
    fig.suptitle("Held-out scenes: depth (near = bright), predictions aligned by scale and "
                 "shift")
    common.save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps per loss")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 4)")
    common.add_split_flags(parser, train_images=1024, test_images=128)
    parser.add_argument("--channels", type=int, default=16, help="width of the first level")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="initial Adam learning rate (cosine decay to 0 over --steps)")
    parser.add_argument("--show", type=int, default=4, help="held-out scenes in the PNG")
    args = common.parse_args(parser, argv, smoke=SMOKE, out_help="depth_predictions.png",
                             positive=("steps", "batch_size", "train_images", "test_images",
                                       "channels", "show"))
    if args.size < 16 or args.size % 4:
        parser.error("--size must be a multiple of 4, at least 16 (two 2x poolings and the "
                     "four scales of the gradient-matching term)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the held-out metrics per loss, the training-loss curves and
    the PNG's path."""
    args = parse_args(argv)
    start = time.perf_counter()
    data = make_data(args.seed, train_images=args.train_images, test_images=args.test_images,
                     size=args.size)
    print(f"training: {args.train_images} generated scenes {args.size}x{args.size}, ground "
          f"truth times an unknown per-image factor in [{SCALE_RANGE[0]:.2f}, "
          f"{SCALE_RANGE[1]:.0f}]; held out: {args.test_images} more scenes")
    runs = train(data, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                 learning_rate=args.learning_rate, channels=args.channels)
    metrics, predictions = evaluate(runs, data)
    report(metrics, args.test_images, args.size)

    path = args.out / "depth_predictions.png"
    plot_depth(data["x_test"], data["y_test"], predictions, path, args.show)
    common.print_done(start, {"held-out depth maps": path})
    curves = {name: np.asarray(jax.device_get(run.losses), np.float64)
              for name, run in runs.items()}
    return {"metrics": metrics, "losses": curves, "png": path}


if __name__ == "__main__":
    main()
