"""VGG-16 feature extractor (Flax NNX) for perceptual and style losses, and its converter.

:class:`VGG16Features` is torchvision's ``vgg16().features`` trunk (13
convolutions 3x3 with padding 1, each followed by a ReLU, and 5 max-pools
2x2) in channels-last layout; calling it returns a dict of the requested
activations, ready to be a ``feature_fn`` of :func:`jaxloss.perceptual_loss`
and :func:`jaxloss.style_loss`. Layers are named as in the VGG paper and in
Johnson et al.: ``conv{b}_{i}``, ``relu{b}_{i}``, ``pool{b}``; the default
is Johnson's ``relu1_2, relu2_2, relu3_3, relu4_3``.

jaxloss ships no weights. :func:`vgg16_features` loads them from a file the
user supplies (``.npz`` or ``.safetensors``, keys ``features.{i}.weight`` in
HWIO and ``features.{i}.bias``, ``i`` torchvision's index in ``features``).
Convert torchvision's ImageNet checkpoint once with::

    python -m jaxloss.image.vgg vgg16-397923af.pth vgg16_features.safetensors

The converter reads the checkpoint with ``torch.load(..., weights_only=True)``:
it never unpickles arbitrary objects, and refuses a file that holds any.

This module needs Flax (the ``examples`` extra); ``.safetensors`` files need
the ``safetensors`` package and the converter needs PyTorch. Nothing else in
jaxloss imports it: ``jaxloss.vgg16_features`` and ``jaxloss.VGG16Features``
load it on first use.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike, DTypeLike

try:
    from flax import nnx
except ImportError as error:  # pragma: no cover - exercised only without Flax
    raise ImportError(
            "jaxloss.image.vgg (VGG16Features, vgg16_features) needs Flax: "
            "pip install 'jaxloss[flax]' (or pip install flax)."
    ) from error

__all__ = [
    "DEFAULT_LAYERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYERS",
    "VGG16Features",
    "convert_checkpoint",
    "load_weights",
    "main",
    "vgg16_features",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# torchvision's ``vgg16().features``: (name, kind, index in features, out channels).
# Convolutions at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, each followed by
# its ReLU; max-pools at 4, 9, 16, 23, 30.
_BLOCKS: tuple[int, ...] = (2, 2, 3, 3, 3)
_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)


def _layout() -> tuple[tuple[str, str, int, int], ...]:
    layout, index = [], 0
    for block, (convs, width) in enumerate(zip(_BLOCKS, _WIDTHS, strict=True), start=1):
        for i in range(1, convs + 1):
            layout.append((f"conv{block}_{i}", "conv", index, width))
            layout.append((f"relu{block}_{i}", "relu", index + 1, width))
            index += 2
        layout.append((f"pool{block}", "pool", index, width))
        index += 1
    return tuple(layout)


_LAYOUT = _layout()
LAYERS: tuple[str, ...] = tuple(name for name, *_ in _LAYOUT)
"""Every layer name, in order: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5``."""
DEFAULT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
"""Johnson et al.'s layers (torchvision indices 3, 8, 15, 22)."""


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYERS]
    if not layers or unknown:
        raise ValueError(
                f"layers must be a non-empty sequence of VGG-16 layer names from {LAYERS}; "
                f"got {layers!r}" + (f" (unknown: {unknown})." if unknown else ".")
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers names a layer twice: {layers!r}.")
    return layers


def _convs_needed(layers: tuple[str, ...]) -> list[tuple[str, int, int, int]]:
    """``[(conv name, torchvision index, in channels, out channels)]`` up to the deepest layer."""
    deepest = max(LAYERS.index(name) for name in layers)
    convs, channels = [], 3
    for name, kind, index, width in _LAYOUT[:deepest + 1]:
        if kind == "conv":
            convs.append((name, index, channels, width))
            channels = width
    return convs


class VGG16Features(nnx.Module):
    r"""VGG-16 convolutional trunk (torchvision's ``features``) returning named activations.

    .. math:: \phi(x) = \{\,\text{name}: a_\text{name}(x)\,\}, \quad
              a = \text{the activations of conv3x3} \to \text{ReLU} \to \dots
              \to \text{maxpool}\,2\times2

    Images are ``(N, H, W, 3)`` RGB in ``[0, 1]``; with ``normalize=True`` they
    are standardised with the ImageNet mean and standard deviation first, as
    torchvision's pretrained weights expect. Only the convolutions up to the
    deepest requested layer are created and run. The attributes ``conv1_1``
    ... ``conv5_3`` are ``nnx.Conv`` modules (kernels HWIO). Max-pools floor
    odd sizes, as ``torch.nn.MaxPool2d(2, 2)`` does.

    Args:
      layers: names from :data:`LAYERS` (``conv{b}_{i}``, ``relu{b}_{i}``,
        ``pool{b}``); default Johnson et al.'s ``relu1_2, relu2_2, relu3_3,
        relu4_3``.
      normalize: standardise ``[0, 1]`` inputs with ImageNet's mean/std.
      dtype: computation dtype of the convolutions (inputs and parameters
        are cast to it); default float32.
      param_dtype: dtype of the parameters.
      rngs: ``nnx.Rngs`` for the random initialisation (LeCun normal, zero
        biases). Use :func:`vgg16_features` to load trained weights instead.

    Returns (when called on ``images``):
      A dict ``name -> (N, h, w, c)`` activations, in the order of ``layers``.

    Raises:
      ValueError: an unknown layer name, or images that are not
        ``(N, H, W, 3)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxloss
      >>> vgg = jaxloss.VGG16Features(layers=("relu1_2", "pool1"), rngs=nnx.Rngs(0))
      >>> features = vgg(jnp.zeros((2, 16, 16, 3)))
      >>> {name: f.shape for name, f in features.items()}
      {'relu1_2': (2, 16, 16, 64), 'pool1': (2, 8, 8, 64)}

    References:
      Simonyan and Zisserman, `Very Deep Convolutional Networks for
      Large-Scale Image Recognition <https://arxiv.org/abs/1409.1556>`_, ICLR
      2015; Johnson et al., `Perceptual Losses for Real-Time Style Transfer
      and Super-Resolution <https://arxiv.org/abs/1603.08155>`_, ECCV 2016.
      Equivalent to ``torchvision.models.vgg16(weights=...).features`` on
      channels-first inputs, read after indices 3, 8, 15, 22 for the default
      layers.
    """

    def __init__(
        self,
        *,
        layers: Sequence[str] = DEFAULT_LAYERS,
        normalize: bool = True,
        dtype: DTypeLike = jnp.float32,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a Python bool; got {normalize!r}.")
        self.layers = _check_layers(layers)
        self.normalize = normalize
        self.dtype = jnp.dtype(dtype)
        self.conv_names = tuple(name for name, *_ in _convs_needed(self.layers))
        for name, _, in_channels, out_channels in _convs_needed(self.layers):
            setattr(self, name, nnx.Conv(
                    in_channels, out_channels, kernel_size=(3, 3), padding=((1, 1), (1, 1)),
                    dtype=self.dtype, param_dtype=param_dtype, rngs=rngs))

    def __call__(self, images: ArrayLike) -> dict[str, Array]:
        x = jnp.asarray(images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(
                    f"images must be (N, H, W, 3) RGB, channels-last; got shape {x.shape}."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                    f"images must be floating in [0, 1]; got dtype {x.dtype}. For uint8 images "
                    "use images.astype(jnp.float32) / 255."
            )
        x = x.astype(self.dtype)
        if self.normalize:
            mean = jnp.asarray(IMAGENET_MEAN, self.dtype)
            std = jnp.asarray(IMAGENET_STD, self.dtype)
            x = (x - mean[None, None, None, :]) / std[None, None, None, :]
        wanted = set(self.layers)
        deepest = max(LAYERS.index(name) for name in self.layers)
        out: dict[str, Array] = {}
        for name, kind, _, _ in _LAYOUT[:deepest + 1]:
            if kind == "conv":
                x = getattr(self, name)(x)
            elif kind == "relu":
                x = jnp.maximum(x, jnp.zeros((), x.dtype))
            else:
                # [N, H // 2, W // 2, C]: floor, as torch.nn.MaxPool2d(2, 2).
                x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in self.layers}


def load_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a ``.npz`` or ``.safetensors`` weights file into NumPy arrays (no pickle)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    if path.endswith(".safetensors"):
        return dict(_safetensors().load_file(path))
    raise ValueError(
            f"weights file {path!r} must end in .npz or .safetensors. Convert torchvision's "
            "checkpoint with: python -m jaxloss.image.vgg SRC.pth DST.safetensors"
    )


def vgg16_features(
    path: str | os.PathLike[str],
    *,
    layers: Sequence[str] = DEFAULT_LAYERS,
    normalize: bool = True,
    dtype: DTypeLike = jnp.float32,
) -> VGG16Features:
    """A :class:`VGG16Features` with the weights of a user-supplied file.

    The file is ``.npz`` or ``.safetensors`` with keys ``features.{i}.weight``
    (HWIO, ``(3, 3, in, out)``) and ``features.{i}.bias`` (``(out,)``), ``i``
    the index in torchvision's ``vgg16().features`` (0, 2, 5, ..., 28), as the
    converter ``python -m jaxloss.image.vgg SRC.pth DST`` writes them. Only
    the convolutions up to the deepest requested layer are read; other keys
    are ignored. ``.npz`` files are read with ``allow_pickle=False``.

    Args:
      path: the weights file.
      layers: names of the activations to return (see :data:`LAYERS`);
        default Johnson et al.'s ``relu1_2, relu2_2, relu3_3, relu4_3``.
      normalize: standardise ``[0, 1]`` RGB inputs with ImageNet's mean/std
        (what torchvision's pretrained weights expect).
      dtype: computation dtype of the convolutions.

    Returns:
      The module; ``module(images)`` gives a dict ``name -> (N, h, w, c)``, so
      the module itself is a ``feature_fn`` for :func:`jaxloss.perceptual_loss`
      and :func:`jaxloss.style_loss` (close over it, or split it with
      ``nnx.split`` to pass its state through ``jax.jit``).

    Raises:
      ValueError: the file lacks a needed key, a weight has the wrong shape,
        the suffix is not ``.npz``/``.safetensors``, or an unknown layer.
      ImportError: a ``.safetensors`` file without the ``safetensors`` package.

    Example:
      >>> import os, tempfile
      >>> import numpy as np
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> # relu1_2 needs conv1_1 (index 0) and conv1_2 (index 2) only.
      >>> weights = {"features.0.weight": np.zeros((3, 3, 3, 64), np.float32),
      ...            "features.0.bias": np.ones(64, np.float32),       # conv1_1 = 1 everywhere
      ...            "features.2.weight": np.ones((3, 3, 64, 64), np.float32),
      ...            "features.2.bias": np.zeros(64, np.float32)}     # sums its 3x3x64 window
      >>> path = os.path.join(tempfile.mkdtemp(), "vgg_tiny.npz")
      >>> np.savez(path, **weights)
      >>> vgg = jaxloss.vgg16_features(path, layers=("relu1_2",), normalize=False)
      >>> out = vgg(jnp.zeros((1, 4, 4, 3)))["relu1_2"]
      >>> float(out[0, 0, 0, 0]), float(out[0, 0, 1, 0]), float(out[0, 1, 1, 0])
      (256.0, 384.0, 576.0)

      Corner, edge and interior pixels see 4, 6 and 9 of the 3x3 window
      (zero padding), times 64 channels.

    References:
      Simonyan and Zisserman, `Very Deep Convolutional Networks for
      Large-Scale Image Recognition <https://arxiv.org/abs/1409.1556>`_, ICLR
      2015; Johnson et al., `Perceptual Losses for Real-Time Style Transfer
      and Super-Resolution <https://arxiv.org/abs/1603.08155>`_, ECCV 2016.
      Equivalent to ``torchvision.models.vgg16(weights="IMAGENET1K_V1")
      .features`` (after converting its checkpoint), read at indices 3, 8,
      15, 22 for the default layers.
    """
    layers = _check_layers(layers)
    weights = load_weights(path)
    module = nnx.eval_shape(lambda: VGG16Features(
            layers=layers, normalize=normalize, dtype=dtype, rngs=nnx.Rngs(0)))
    for name, index, in_channels, out_channels in _convs_needed(layers):
        conv = getattr(module, name)
        for part, shape in (("weight", (3, 3, in_channels, out_channels)),
                            ("bias", (out_channels,))):
            key = f"features.{index}.{part}"
            if key not in weights:
                raise ValueError(
                        f"{os.fspath(path)!r} has no {key!r} ({name}'s {part}), needed for "
                        f"layers {layers}; it has {sorted(weights)[:8]}..."
                )
            value = np.asarray(weights[key])
            if value.shape != shape:
                hint = " (OIHW? convert with python -m jaxloss.image.vgg)" if part == "weight" \
                    else ""
                raise ValueError(
                        f"{key!r} has shape {value.shape}; expected {shape} (HWIO){hint}."
                )
            variable = conv.kernel if part == "weight" else conv.bias
            variable.set_value(jnp.asarray(value, jnp.float32))
    return module


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as error:
        raise ImportError(
                ".safetensors weights need the safetensors package: pip install safetensors "
                "(or use an .npz file)."
        ) from error
    return safetensors.numpy


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> list[str]:
    """Converts torchvision's VGG-16 state dict (``.pth``) to HWIO ``.npz``/``.safetensors``.

    Reads ``src`` with ``torch.load(src, map_location="cpu", weights_only=True)``
    (no arbitrary unpickling: a file holding anything but tensors and plain
    containers is refused). Accepts a full ``vgg16()`` state dict (keys
    ``features.{i}.*``; the classifier is dropped) or one of the ``features``
    ``nn.Sequential`` alone (keys ``{i}.*``). Writes ``features.{i}.weight``
    transposed OIHW -> HWIO and ``features.{i}.bias``, float32.

    Returns:
      The keys written.
    """
    import torch

    src, dst = os.fspath(src), os.fspath(dst)
    if not dst.endswith((".npz", ".safetensors")):
        raise ValueError(f"destination {dst!r} must end in .npz or .safetensors.")
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
                f"{src!r} holds objects other than tensors; refusing to unpickle them "
                "(torch.load(weights_only=True) failed). Save the model's state_dict() only."
        ) from error
    if not isinstance(state, Mapping):
        raise ValueError(f"{src!r} holds a {type(state).__name__}, not a state dict.")
    if not any(str(k).startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    arrays: dict[str, np.ndarray] = {}
    for name, index, in_channels, out_channels in _convs_needed(("pool5",)):
        if f"features.{index}.weight" not in state and index > 0:
            break  # a trunk cut short (e.g. up to relu4_3): convert what is there
        for part, shape in (("weight", (out_channels, in_channels, 3, 3)),
                            ("bias", (out_channels,))):
            key = f"features.{index}.{part}"
            if key not in state:
                raise ValueError(f"{src!r} has no {key!r} ({name}'s {part}).")
            if not isinstance(state[key], torch.Tensor):
                raise ValueError(f"{key!r} in {src!r} is a {type(state[key]).__name__}, "
                                 "not a tensor.")
            value = state[key].detach().to(torch.float32).numpy()
            if value.shape != shape:
                raise ValueError(f"{key!r} has shape {value.shape}; expected {shape} (OIHW).")
            if part == "weight":
                value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            arrays[key] = np.ascontiguousarray(value)
    if dst.endswith(".npz"):
        np.savez(dst, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds vs allow_pickle
    else:
        _safetensors().save_file(arrays, dst)
    return sorted(arrays)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jaxloss.image.vgg SRC.pth DST.(npz|safetensors)``."""
    parser = argparse.ArgumentParser(
            prog="python -m jaxloss.image.vgg",
            description="Convert torchvision's VGG-16 state dict to jaxloss's HWIO weights file.",
    )
    parser.add_argument("src", help="torchvision checkpoint, e.g. vgg16-397923af.pth")
    parser.add_argument("dst", help="output file, .npz or .safetensors")
    args = parser.parse_args(argv)
    try:
        keys = convert_checkpoint(args.src, args.dst)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(keys)} arrays to {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
