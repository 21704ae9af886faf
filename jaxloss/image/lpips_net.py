"""LPIPS networks (Flax NNX): AlexNet or VGG-16 trunks with LPIPS's linear heads, and a converter.

:class:`LPIPSNetwork` is the network of the ``lpips`` package (Zhang et al.
2018, version 0.1): its scaling layer, a torchvision trunk read after five
ReLUs (AlexNet: ``relu1`` ... ``relu5``; VGG-16: ``relu1_2``, ``relu2_2``,
``relu3_3``, ``relu4_3``, ``relu5_3``) and one non-negative 1x1 linear head
per layer. :func:`jaxloss.lpips_loss` takes it as ``network=``.

jaxloss ships no weights. :func:`lpips_network` loads them from a file the
user supplies (``.npz`` or ``.safetensors``): ``features.{i}.weight`` (HWIO)
and ``features.{i}.bias`` for the trunk, ``i`` torchvision's index in
``alexnet().features`` or ``vgg16().features``, and ``lin{k}.weight``
(``(C_k,)``) for the heads. Convert the official checkpoints once with::

    python -m jaxloss.image.lpips_net --net alex alexnet-owt-7be5be79.pth alex.pth lpips_alex.npz

(torchvision's trunk, then the ``lpips`` package's ``weights/v0.1/alex.pth``
heads; a full ``lpips.LPIPS().state_dict()`` saved to one file works too).
The converter reads with ``torch.load(..., weights_only=True)``: no arbitrary
unpickling.

This module needs Flax, as :mod:`jaxloss.image.vgg` does; ``jaxloss.lpips_network``
and ``jaxloss.LPIPSNetwork`` load it on first use.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxloss.image import vgg

try:
    from flax import nnx
except ImportError as error:  # pragma: no cover - exercised only without Flax
    raise ImportError(
            "jaxloss.image.lpips_net (LPIPSNetwork, lpips_network) needs Flax: "
            "pip install 'jaxloss[flax]' (or pip install flax)."
    ) from error

__all__ = [
    "LPIPSNetwork",
    "convert_checkpoint",
    "lpips_network",
    "main",
]

Net = Literal["alex", "vgg"]
# The lpips package's ScalingLayer: (x - shift) / scale on [-1, 1] RGB.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# torchvision alexnet().features: (index, in, out, kernel, stride, padding, pool before).
_ALEX = ((0, 3, 64, 11, 4, 2, False), (3, 64, 192, 5, 1, 2, True),
         (6, 192, 384, 3, 1, 1, True), (8, 384, 256, 3, 1, 1, False),
         (10, 256, 256, 3, 1, 1, False))
_VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
CHANNELS: dict[str, tuple[int, ...]] = {"alex": (64, 192, 384, 256, 256),
                                        "vgg": (64, 128, 256, 512, 512)}


class _AlexNetFeatures(nnx.Module):
    """torchvision's ``alexnet().features`` read after its five ReLUs (lpips's slices)."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.convs = nnx.List([
            nnx.Conv(cin, cout, kernel_size=(k, k), strides=(s, s), padding=((p, p), (p, p)),
                     rngs=rngs) for _, cin, cout, k, s, p, _ in _ALEX])

    def __call__(self, x: Array) -> list[Array]:
        out = []
        for conv, (*_, pool) in zip(self.convs, _ALEX, strict=True):
            if pool:  # MaxPool2d(3, 2), floor
                x = nnx.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding="VALID")
            x = jnp.maximum(conv(x), 0.0)
            out.append(x)
        return out


class LPIPSNetwork(nnx.Module):
    r"""The LPIPS network: scaling layer, trunk features and linear heads (lpips v0.1).

    Calling it on ``(N, H, W, 3)`` images in ``[-1, 1]`` returns the list of
    the five trunk activations ``(N, h_k, w_k, C_k)``; ``linear_weights``
    holds the five heads ``(C_k,)``. :func:`jaxloss.lpips_loss` combines them.

    Args:
      net: ``"alex"`` (AlexNet, lpips's default) or ``"vgg"`` (VGG-16).
      rngs: ``nnx.Rngs`` for a random initialisation (heads set to 1/C_k);
        use :func:`lpips_network` to load trained weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxloss
      >>> network = nnx.eval_shape(lambda: jaxloss.LPIPSNetwork(net="alex", rngs=nnx.Rngs(0)))
      >>> [w.shape for w in network.linear_weights]
      [(64,), (192,), (384,), (256,), (256,)]

    References:
      Zhang et al., `The Unreasonable Effectiveness of Deep Features as a
      Perceptual Metric <https://arxiv.org/abs/1801.03924>`_, CVPR 2018; the
      ``lpips`` package's ``pretrained_networks.py`` (the slices) and
      ``lpips.py`` (``ScalingLayer``, ``NetLinLayer``).
    """

    def __init__(self, *, net: Net = "alex", rngs: nnx.Rngs) -> None:
        if net not in CHANNELS:
            raise ValueError(f"net must be 'alex' or 'vgg'; got {net!r}.")
        self.net = net
        self.backbone: _AlexNetFeatures | vgg.VGG16Features
        if net == "alex":
            self.backbone = _AlexNetFeatures(rngs=rngs)
        else:
            self.backbone = vgg.VGG16Features(layers=_VGG_LAYERS, normalize=False, rngs=rngs)
        self.heads = nnx.List([nnx.Param(jnp.full((c,), 1.0 / c, jnp.float32))
                               for c in CHANNELS[net]])

    @property
    def linear_weights(self) -> tuple[Array, ...]:
        """The five heads' weights ``(C_k,)`` (lpips's ``lin{k}.model.1.weight``)."""
        return tuple(head.get_value() for head in self.heads)

    def __call__(self, images: ArrayLike) -> list[Array]:
        x = jnp.asarray(images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) RGB, channels-last; got shape "
                             f"{x.shape}.")
        shift = jnp.asarray(_SHIFT, x.dtype)
        scale = jnp.asarray(_SCALE, x.dtype)
        x = (x - shift[None, None, None, :]) / scale[None, None, None, :]
        if isinstance(self.backbone, _AlexNetFeatures):  # net == "alex"
            return self.backbone(x)
        features = self.backbone(x)
        return [features[name] for name in _VGG_LAYERS]


def _take(weights: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...], path: str,
          ) -> np.ndarray:
    if key not in weights:
        raise ValueError(f"{path!r} has no {key!r}; it has {sorted(weights)[:8]}... Convert the "
                         "checkpoints with python -m jaxloss.image.lpips_net.")
    value = np.asarray(weights[key], np.float32)
    if value.shape != shape:
        raise ValueError(f"{key!r} in {path!r} has shape {value.shape}; expected {shape}.")
    return value


def lpips_network(path: str | os.PathLike[str], *, net: Net = "alex") -> LPIPSNetwork:
    """An :class:`LPIPSNetwork` with the weights of a user-supplied file (no download).

    The file (``.npz``, read with ``allow_pickle=False``, or ``.safetensors``)
    holds ``features.{i}.weight`` (HWIO) and ``features.{i}.bias`` for the
    trunk's convolutions (torchvision's indices: AlexNet 0, 3, 6, 8, 10;
    VGG-16 0, 2, ..., 28) and ``lin0.weight`` ... ``lin4.weight`` ``(C_k,)``,
    as ``python -m jaxloss.image.lpips_net`` writes them.

    Args:
      path: the weights file.
      net: ``"alex"`` or ``"vgg"``.

    Returns:
      The network, to pass as ``network=`` to :func:`jaxloss.lpips_loss`.

    Raises:
      ValueError: an unknown ``net``, a missing key or a wrong shape.

    Example:
      >>> import os, tempfile
      >>> import numpy as np
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> rng = np.random.default_rng(0)
      >>> weights = {f"lin{k}.weight": np.ones(c, np.float32)
      ...            for k, c in enumerate((64, 192, 384, 256, 256))}
      >>> for i, cin, cout, k in [(0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3),
      ...                         (8, 384, 256, 3), (10, 256, 256, 3)]:
      ...     weights[f"features.{i}.weight"] = rng.normal(size=(k, k, cin, cout)).astype("f4")
      ...     weights[f"features.{i}.bias"] = np.zeros(cout, np.float32)
      >>> path = os.path.join(tempfile.mkdtemp(), "lpips_alex.npz")
      >>> np.savez(path, **weights)
      >>> network = jaxloss.lpips_network(path, net="alex")
      >>> x = jnp.zeros((1, 32, 32, 3))
      >>> float(jaxloss.lpips_loss(x, x, network=network))
      0.0

    References:
      Zhang et al., `The Unreasonable Effectiveness of Deep Features as a
      Perceptual Metric <https://arxiv.org/abs/1801.03924>`_, CVPR 2018.
      Equivalent to ``lpips.LPIPS(net=net)`` with the same trunk and heads.
    """
    if net not in CHANNELS:
        raise ValueError(f"net must be 'alex' or 'vgg'; got {net!r}.")
    path = os.fspath(path)
    if net == "vgg":
        trunk = vgg.vgg16_features(path, layers=_VGG_LAYERS, normalize=False)
    weights = vgg.load_weights(path)
    module = nnx.eval_shape(lambda: LPIPSNetwork(net=net, rngs=nnx.Rngs(0)))
    if net == "vgg":
        module.backbone = trunk
    else:
        assert isinstance(module.backbone, _AlexNetFeatures)  # net == "alex"
        for conv, (i, cin, cout, k, *_) in zip(module.backbone.convs, _ALEX, strict=True):
            assert conv.bias is not None  # the trunk's convolutions have biases
            conv.kernel.set_value(jnp.asarray(
                    _take(weights, f"features.{i}.weight", (k, k, cin, cout), path)))
            conv.bias.set_value(jnp.asarray(_take(weights, f"features.{i}.bias", (cout,), path)))
    for k, (head, c) in enumerate(zip(module.heads, CHANNELS[net], strict=True)):
        head.set_value(jnp.asarray(_take(weights, f"lin{k}.weight", (c,), path)))
    return module


def _trunk_indices(net: str) -> list[tuple[int, tuple[int, ...]]]:
    """``[(torchvision index, OIHW shape)]`` of the trunk's convolutions."""
    if net == "alex":
        return [(i, (cout, cin, k, k)) for i, cin, cout, k, *_ in _ALEX]
    convs = vgg._convs_needed(("relu5_3",))
    return [(index, (cout, cin, 3, 3)) for _, index, cin, cout in convs]


def convert_checkpoint(sources: Sequence[str | os.PathLike[str]], dst: str | os.PathLike[str],
                       *, net: Net = "alex") -> list[str]:
    """Converts torchvision's trunk and lpips's heads (``.pth``) to one ``.npz``/``.safetensors``.

    Each source is read with ``torch.load(src, map_location="cpu",
    weights_only=True)`` and the state dicts are merged. Trunk keys are
    torchvision's ``features.{i}.*`` or lpips's ``net.slice{k}.{i}.*``; head
    keys are lpips's ``lin{k}.model.1.weight`` (``(1, C, 1, 1)``) or
    ``lin{k}.weight``. Writes ``features.{i}.weight`` transposed OIHW -> HWIO,
    ``features.{i}.bias`` and ``lin{k}.weight`` ``(C_k,)``, float32.

    Returns:
      The keys written.
    """
    import torch

    if net not in CHANNELS:
        raise ValueError(f"net must be 'alex' or 'vgg'; got {net!r}.")
    dst = os.fspath(dst)
    if not dst.endswith((".npz", ".safetensors")):
        raise ValueError(f"destination {dst!r} must end in .npz or .safetensors.")
    state: dict[str, object] = {}
    for src in sources:
        src = os.fspath(src)
        try:
            loaded = torch.load(src, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                    f"{src!r} holds objects other than tensors; refusing to unpickle them "
                    "(torch.load(weights_only=True) failed). Save a state_dict() only."
            ) from error
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{src!r} holds a {type(loaded).__name__}, not a state dict.")
        for key, value in loaded.items():
            key = re.sub(r"^net\.slice\d+\.", "features.", str(key))  # lpips's full model
            key = re.sub(r"^(lin\d+)\.model\.1\.weight$", r"\1.weight", key)
            state[key] = value

    def tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in state:
            raise ValueError(f"the checkpoints have no {key!r} (net={net!r}).")
        stored = state[key]
        if not isinstance(stored, torch.Tensor):
            raise ValueError(f"{key!r} is a {type(stored).__name__}, not a tensor.")
        value = stored.detach().to(torch.float32).numpy()
        if value.size != int(np.prod(shape)) or (len(shape) > 1 and value.shape != shape):
            raise ValueError(f"{key!r} has shape {value.shape}; expected {shape}.")
        return value.reshape(shape)

    arrays: dict[str, np.ndarray] = {}
    for index, shape in _trunk_indices(net):
        weight = tensor(f"features.{index}.weight", shape)
        arrays[f"features.{index}.weight"] = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))
        arrays[f"features.{index}.bias"] = tensor(f"features.{index}.bias", shape[:1])
    for k, c in enumerate(CHANNELS[net]):
        arrays[f"lin{k}.weight"] = np.ascontiguousarray(tensor(f"lin{k}.weight", (c,)))
    if dst.endswith(".npz"):
        np.savez(dst, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds vs allow_pickle
    else:
        vgg._safetensors().save_file(arrays, dst)
    return sorted(arrays)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jaxloss.image.lpips_net --net alex TRUNK.pth HEADS.pth DST.npz``."""
    parser = argparse.ArgumentParser(
            prog="python -m jaxloss.image.lpips_net",
            description="Convert torchvision's trunk and lpips's linear heads to jaxloss's "
                        "LPIPS weights file.")
    parser.add_argument("--net", choices=("alex", "vgg"), default="alex")
    parser.add_argument("sources", nargs="+", help="state dicts (.pth): the trunk, the heads")
    parser.add_argument("dst", help="output file, .npz or .safetensors")
    args = parser.parse_args(argv)
    try:
        keys = convert_checkpoint(args.sources, args.dst, net=args.net)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(keys)} arrays to {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
