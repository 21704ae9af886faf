"""LPIPS against the lpips package's network, rewritten in torch float64, value and gradient.

The ``lpips`` package does not import here (it needs torchvision), so its
network is rebuilt below from its source (richzhang/PerceptualSimilarity,
``lpips/pretrained_networks.py``: the AlexNet slices ``features[0:2]``,
``[2:5]``, ``[5:8]``, ``[8:10]``, ``[10:12]`` and the VGG-16 slices
``[0:4]``, ``[4:9]``, ``[9:16]``, ``[16:23]``, ``[23:30]`` of torchvision's
``features``; ``lpips/lpips.py``: ``ScalingLayer``, ``normalize_tensor``
with eps 1e-10, ``NetLinLayer`` = Dropout + 1x1 conv without bias,
``spatial_average``, the sum over layers), with its state-dict keys
(``net.slice{k}.{i}.*``, ``lin{k}.model.1.weight``, ``scaling_layer.*``). The
trunk gets random He-initialised weights and the heads random non-negative
ones (lpips clamps its heads at 0); the state dict goes through the converter
(``python -m jaxloss.image.lpips_net``) into ``jaxloss.lpips_network``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

nnx = pytest.importorskip("flax.nnx")

import jaxloss  # noqa: E402
from jaxloss.image import lpips_net  # noqa: E402

_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool",), ("conv", 64, 192, 5, 1, 2), ("relu",),
         ("pool",), ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1),
         ("relu",), ("conv", 256, 256, 3, 1, 1), ("relu",)]
_VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_SLICES = {"alex": (0, 2, 5, 8, 10, 12), "vgg": (0, 4, 9, 16, 23, 30)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _features(net):
    """torchvision's alexnet().features / vgg16().features layers, in order."""
    layers = []
    if net == "alex":
        for spec in _ALEX:
            if spec[0] == "conv":
                _, cin, cout, k, s, p = spec
                layers.append(torch.nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif spec[0] == "relu":
                layers.append(torch.nn.ReLU(inplace=False))
            else:
                layers.append(torch.nn.MaxPool2d(kernel_size=3, stride=2))
        return layers
    channels = 3
    for v in _VGG_CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [torch.nn.Conv2d(channels, v, 3, padding=1), torch.nn.ReLU(inplace=False)]
            channels = v
    return layers


class _Trunk(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        layers, bounds = _features(net), _SLICES[net]
        for k in range(5):
            block = torch.nn.Sequential()
            for i in range(bounds[k], bounds[k + 1]):
                block.add_module(str(i), layers[i])  # lpips keeps torchvision's indices
            setattr(self, f"slice{k + 1}", block)

    def forward(self, x):
        out = []
        for k in range(5):
            x = getattr(self, f"slice{k + 1}")(x)
            out.append(x)
        return out


class _ScalingLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])

    def forward(self, x):
        return (x - self.shift) / self.scale


class _NetLinLayer(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Dropout(),
                                         torch.nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class _TorchLPIPS(torch.nn.Module):
    """lpips.LPIPS(net=net, version="0.1", lpips=True, spatial=False), eval mode."""

    def __init__(self, net):
        super().__init__()
        self.scaling_layer = _ScalingLayer()
        self.net = _Trunk(net)
        for k, c in enumerate(_CHANNELS[net]):
            setattr(self, f"lin{k}", _NetLinLayer(c))

    def forward(self, in0, in1, normalize=False):
        if normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        outs0 = self.net(self.scaling_layer(in0))
        outs1 = self.net(self.scaling_layer(in1))
        total = 0
        for k in range(5):
            f0 = outs0[k] / (torch.sqrt(torch.sum(outs0[k] ** 2, dim=1, keepdim=True)) + 1e-10)
            f1 = outs1[k] / (torch.sqrt(torch.sum(outs1[k] ** 2, dim=1, keepdim=True)) + 1e-10)
            total = total + getattr(self, f"lin{k}")((f0 - f1) ** 2).mean([2, 3], keepdim=True)
        return total


def _model(net):
    torch.manual_seed(0)
    model = _TorchLPIPS(net).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.uniform_(module.bias, -0.1, 0.1)
            elif isinstance(module, torch.nn.Conv2d):
                torch.nn.init.uniform_(module.weight, 0.0, 1.0)  # heads: non-negative
    return model


# The VGG-16 trunk is VGG16Features, whose layers tests/test_vgg.py checks against torch;
# here its value only (its gradient program is the slowest compile of the file).
@pytest.mark.parametrize("net,size,normalize,layout,check_grad", [
    ("alex", 40, False, "lpips", True), ("vgg", 20, True, "torchvision", False)])
def test_lpips_against_torch_rewrite(tmp_path, net, size, normalize, layout, check_grad):
    model = _model(net)
    state = model.state_dict()
    if layout == "lpips":  # one file: lpips.LPIPS().state_dict()
        torch.save(state, tmp_path / "lpips.pth")
        sources = [str(tmp_path / "lpips.pth")]
        dst = str(tmp_path / "converted.npz")
    else:  # torchvision's trunk (features.{i}.*) and lpips's heads file (lin{k}.model.1.weight)
        trunk = {f"features.{k.split('.', 2)[2]}": v for k, v in state.items()
                 if k.startswith("net.slice")}
        torch.save(trunk, tmp_path / "trunk.pth")
        torch.save({k: v for k, v in state.items() if k.startswith("lin")}, tmp_path / "h.pth")
        sources = [str(tmp_path / "trunk.pth"), str(tmp_path / "h.pth")]
        dst = str(tmp_path / "converted.safetensors")
    assert lpips_net.main(["--net", net, *sources, dst]) == 0
    network = jaxloss.lpips_network(dst, net=net)

    rng = np.random.default_rng(0)
    low = 0.0 if normalize else -1.0
    x = rng.uniform(low, 1.0, (2, size, size + 3, 3)).astype(np.float32)
    y = np.clip(x + 0.2 * rng.normal(size=x.shape), low, 1.0).astype(np.float32)

    # The network's state is an argument of the jitted function, not a closed-over
    # constant (XLA would fold millions of constants into the program).
    graphdef, params = nnx.split(network)

    def ours(a, b, params):
        values = jaxloss.lpips_loss(a, b, network=nnx.merge(graphdef, params),
                                    normalize=normalize, reduction="none")
        return jnp.sum(values * jnp.asarray([1.0, 2.0])), values

    if check_grad:
        (_, values), grad = jax.jit(jax.value_and_grad(ours, has_aux=True))(
            jnp.asarray(x), jnp.asarray(y), params)
    else:
        values = jax.jit(lambda a, b, p: ours(a, b, p)[1])(jnp.asarray(x), jnp.asarray(y), params)

    model = model.double()
    tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y.transpose(0, 3, 1, 2), dtype=torch.float64)
    reference = model(tx, ty, normalize=normalize).flatten()
    torch.sum(reference * torch.tensor([1.0, 2.0], dtype=torch.float64)).backward()
    # float32 convolutions through up to 13 layers against float64: relative 1e-4.
    np.testing.assert_allclose(values, reference.detach().numpy(), rtol=1e-4)
    if not check_grad:
        return
    expected = tx.grad.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(grad, expected, rtol=1e-3,
                               atol=1e-4 * float(np.max(np.abs(expected))))


def test_lpips_network_errors(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, nothing=np.zeros(1))
    with pytest.raises(ValueError, match=r"features\.0\.weight"):
        jaxloss.lpips_network(path, net="alex")
    with pytest.raises(ValueError, match="net must be"):
        jaxloss.lpips_network(path, net="squeeze")
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "partial.pth")
    assert lpips_net.main([str(tmp_path / "partial.pth"), str(tmp_path / "out.npz")]) == 1


def test_lpips_loss_errors():
    network = type("Net", (), {"linear_weights": (jnp.ones(3),),
                               "__call__": lambda self, x: [x, x]})()
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="feature maps"):
        jaxloss.lpips_loss(x, x, network=network)
    with pytest.raises(ValueError, match="RGB"):
        jaxloss.lpips_loss(jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1)), network=network)
