"""Tests of jaxloss/image/vgg.py: the VGG-16 trunk, its loader and the checkpoint converter.

Reference: a PyTorch ``nn.Sequential`` built here with torchvision's exact
``vgg16().features`` layout (torchvision itself does not import in this
environment): convolutions 3x3/pad 1 at indices 0, 2, 5, 7, 10, 12, 14, 17,
19, 21, 24, 26, 28, each followed by ``ReLU(inplace=True)``, max-pools 2x2 at
4, 9, 16, 23, 30, wrapped in a module with a ``classifier`` so that its state
dict has torchvision's keys. Random weights go through ``torch.save`` ->
``python -m jaxloss.image.vgg`` (main) -> ``jaxloss.vgg16_features``, and the
activations are compared with torch's (torch 2.13, float32) at the matching
indices.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxloss
from jaxloss.image import vgg

_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
# torchvision's indices in features (relu1_2 = 3, relu2_2 = 8, relu3_3 = 15, relu4_3 = 22).
_INDEX = {"conv1_1": 0, "relu1_2": 3, "pool1": 4, "relu2_2": 8, "conv3_1": 10, "relu3_3": 15,
          "relu4_3": 22, "relu5_3": 29, "pool5": 30}


class _TorchVGG16(torch.nn.Module):
    """``features`` laid out as torchvision's vgg16; a stand-in classifier for the keys."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for v in _CFG:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [torch.nn.Conv2d(channels, v, kernel_size=3, padding=1),
                           torch.nn.ReLU(inplace=True)]
                channels = v
        self.features = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Linear(512, 10)


def _torch_model():
    torch.manual_seed(0)
    model = _TorchVGG16().eval()
    with torch.no_grad():
        for layer in model.features:
            if isinstance(layer, torch.nn.Conv2d):
                # He init keeps the activations O(1) through 13 layers (torch's default
                # init shrinks them ~2x per layer, which would hide errors in the deep ones).
                torch.nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                torch.nn.init.uniform_(layer.bias, -0.1, 0.1)
    return model


def _torch_activations(model, images, normalize):
    """NHWC numpy -> {index: NHWC activation after features[index]}."""
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    if normalize:
        x = (x - _MEAN) / _STD
    out = {}
    with torch.no_grad():
        for index, layer in enumerate(model.features):
            x = layer(x)
            out[index] = x.clone().numpy().transpose(0, 2, 3, 1)  # clone: the ReLUs are inplace
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vgg")
    model = _torch_model()
    src = tmp / "vgg16.pth"
    torch.save(model.state_dict(), src)
    paths = {}
    for suffix in ("npz", "safetensors"):
        paths[suffix] = tmp / f"vgg16_features.{suffix}"
        assert vgg.main([str(src), str(paths[suffix])]) == 0
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    reference = {normalize: _torch_activations(model, images, normalize)
                 for normalize in (False, True)}
    return model, paths, images, reference


def test_torch_reference_has_torchvision_layout():
    features = _torch_model().features
    kinds = {i: type(layer).__name__ for i, layer in enumerate(features)}
    assert [i for i, k in kinds.items() if k == "Conv2d"] == [0, 2, 5, 7, 10, 12, 14, 17, 19,
                                                              21, 24, 26, 28]
    assert [i for i, k in kinds.items() if k == "MaxPool2d"] == [4, 9, 16, 23, 30]
    assert len(features) == 31
    assert [vgg.LAYERS.index(name) for name in _INDEX] == list(_INDEX.values())


def _assert_layer_close(name, actual, expected):
    # float32 after up to 13 convolutions: oneDNN and XLA sum each conv's up to
    # 3*3*512 = 4608 products in different orders (~1e-6 relative each), and the
    # deviations compound through the layers; entries where a conv's output
    # nearly cancels have a larger relative error, hence an absolute tolerance
    # scaled to the layer's magnitude.
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, name
    np.testing.assert_allclose(actual, expected, rtol=1e-4,
                               atol=1e-5 * float(np.abs(expected).max()), err_msg=name)


@pytest.mark.parametrize("suffix,normalize", [("npz", True), ("safetensors", False),
                                              ("npz", False), ("safetensors", True)])
def test_default_layers_match_torch(converted, suffix, normalize):
    _, paths, images, reference = converted
    module = jaxloss.vgg16_features(paths[suffix], normalize=normalize)
    features = module(images)
    assert list(features) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    for name, actual in features.items():
        _assert_layer_close(name, actual, reference[normalize][_INDEX[name]])
    # Only the convolutions up to relu4_3 are built and read.
    assert hasattr(module, "conv4_3") and not hasattr(module, "conv5_1")


def test_other_layers_match_torch(converted):
    _, paths, images, reference = converted
    layers = ("pool5", "conv1_1", "pool1", "conv3_1", "relu5_3")  # any order, kept
    features = jaxloss.vgg16_features(paths["npz"], layers=layers)(images)
    assert tuple(features) == layers
    for name in layers:
        _assert_layer_close(name, features[name], reference[True][_INDEX[name]])


def test_converted_files_hold_hwio_weights(converted, tmp_path):
    model, paths, _, _ = converted
    npz = vgg.load_weights(paths["npz"])
    safetensors = vgg.load_weights(paths["safetensors"])
    assert sorted(npz) == sorted(safetensors) == sorted(
            f"features.{i}.{part}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
            for part in ("weight", "bias"))
    state = model.state_dict()
    for key, value in npz.items():
        np.testing.assert_array_equal(value, safetensors[key])
        expected = state[key].numpy()
        if key.endswith("weight"):
            expected = expected.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        np.testing.assert_array_equal(value, expected)
    # The state dict of the bare features Sequential (keys "0.weight", ...) converts alike.
    src = tmp_path / "features_only.pth"
    torch.save(model.features.state_dict(), src)
    dst = tmp_path / "features_only.npz"
    assert vgg.main([str(src), str(dst)]) == 0
    bare = vgg.load_weights(dst)
    assert sorted(bare) == sorted(npz)
    for key, value in bare.items():
        np.testing.assert_array_equal(value, npz[key])


def test_perceptual_loss_with_vgg_matches_torch(converted):
    model, paths, images, reference = converted
    targets = np.random.default_rng(1).uniform(size=images.shape).astype(np.float32)
    expected_targets = _torch_activations(model, targets, True)
    expected = sum(
            torch.nn.functional.l1_loss(torch.from_numpy(reference[True][i]),
                                        torch.from_numpy(expected_targets[i])).item()
            for i in (3, 8))
    module = jaxloss.vgg16_features(paths["safetensors"], layers=("relu1_2", "relu2_2"))
    got = jaxloss.perceptual_loss(images, targets, feature_fn=module)
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)  # see _assert_layer_close


def test_module_under_jit_with_split_state(converted):
    _, paths, images, _ = converted
    module = jaxloss.vgg16_features(paths["npz"], layers=("relu2_2",))
    graphdef, state = nnx.split(module)

    @jax.jit
    def features(state, x):
        return nnx.merge(graphdef, state)(x)["relu2_2"]

    np.testing.assert_allclose(np.asarray(features(state, images)),
                               np.asarray(module(images)["relu2_2"]), rtol=1e-5, atol=1e-5)


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: a stand-in for malicious code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_converter_refuses_pickled_objects_without_running_them(tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    src = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "extra": _Payload(str(marker))},
               src)
    dst = tmp_path / "out.npz"
    with pytest.raises(ValueError, match="refusing to unpickle"):
        vgg.convert_checkpoint(src, dst)
    assert vgg.main([str(src), str(dst)]) == 1
    assert "refusing to unpickle" in capsys.readouterr().err
    assert not marker.exists(), "the converter executed the pickled payload"
    assert not dst.exists()
    # Control: an unrestricted torch.load does run it, so the payload is live.
    torch.load(src, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_loader_errors(tmp_path):
    rng = np.random.default_rng(0)
    conv1 = {"features.0.weight": rng.normal(size=(3, 3, 3, 64)).astype(np.float32),
             "features.0.bias": np.zeros(64, np.float32)}
    partial = tmp_path / "partial.npz"
    np.savez(partial, **conv1)
    assert "conv1_1" in jaxloss.vgg16_features(partial, layers=("relu1_1",)).conv_names
    with pytest.raises(ValueError, match=r"no 'features.2.weight' \(conv1_2's weight\)"):
        jaxloss.vgg16_features(partial, layers=("relu1_2",))
    oihw = tmp_path / "oihw.npz"
    np.savez(oihw, **{**conv1, "features.0.weight": conv1["features.0.weight"].transpose(3, 2, 0,
                                                                                      1)})
    with pytest.raises(ValueError, match=r"expected \(3, 3, 3, 64\) \(HWIO\)"):
        jaxloss.vgg16_features(oihw, layers=("conv1_1",))
    with pytest.raises(ValueError, match=r"must end in \.npz or \.safetensors"):
        jaxloss.vgg16_features(tmp_path / "vgg16.pth")
    with pytest.raises(ValueError, match=r"unknown: \['relu6_1'\]"):
        jaxloss.vgg16_features(partial, layers=("relu1_1", "relu6_1"))
    # .npz files are read without pickle: an object array is refused.
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"features.0.weight": np.array([None], dtype=object)})
    with pytest.raises(ValueError, match="allow_pickle=False"):
        vgg.load_weights(pickled)
    module = jaxloss.vgg16_features(partial, layers=("conv1_1",))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        module(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        module(np.zeros((1, 4, 4, 3), np.uint8))


def test_safetensors_missing_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        vgg.load_weights(tmp_path / "w.safetensors")


def test_half_precision_compute(converted):
    _, paths, images, reference = converted
    module = jaxloss.vgg16_features(paths["npz"], layers=("relu1_2",), dtype=jnp.bfloat16)
    out = module(images)["relu1_2"]
    assert out.dtype == jnp.bfloat16
    expected = reference[True][3]
    # bfloat16 has an 8-bit mantissa: two convolutions, ~1e-2 relative to the layer's scale.
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, rtol=5e-2,
                               atol=5e-2 * float(np.abs(expected).max()))
