"""Smoke test of examples/image_restoration.py: it runs end to end with reduced settings.

The script's ``main`` runs in this process (under the suite's strict rank
promotion; with standard dtype promotion, which optax's Adam needs) with a
narrow network (8 channels, 3 layers), 100 steps on small crops and 8
held-out 48x48 crops, which keeps it to roughly 5-15 s on 2 CPU cores
(mostly the three compilations). Even this short training must lift every
model's held-out PSNR clearly above the noisy input's (residual learning from
an identity start does so within a few dozen steps). The other tests check
the data split, the network's identity start and the metrics without
training anything.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "image_restoration.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = ("noisy input", "L2", "L1+SSIM", "Charbonnier")


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("image_restoration_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_restoration_example_runs_and_every_model_beats_the_noisy_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = _load_example()
    # optax's Adam mixes its int32 step count with float32 (bias correction), which the
    # suite's strict promotion forbids: run the script as a user does, with standard promotion
    with jax.numpy_dtype_promotion("standard"):
        result = example.main(["--steps", "100", "--batch-size", "8", "--crop", "24",
                               "--train-crops", "256", "--test-crops", "4",
                               "--test-crop", "48", "--channels", "8", "--depth", "3",
                               "--learning-rate", "3e-3", "--show", "2", "--seed", "1",
                               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    png = tmp_path / "image_restoration_crops.png"
    assert result["png"] == png and png.is_file()
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert str(png) in out
    metrics = result["metrics"]
    assert tuple(metrics) == ROWS
    noisy = metrics["noisy input"]
    # sigma 0.1 on [0, 1]: about 20 dB before clipping (clipping to [0, 1] only helps)
    assert 19.0 < noisy["psnr"] < 23.0, noisy
    for name in ROWS[1:]:
        assert math.isfinite(metrics[name]["psnr"]) and -1.0 <= metrics[name]["ssim"] <= 1.0
        # 100 steps gain 1.8-4 dB for every model and seed 0-5 (here seed 1: ~4 dB)
        assert metrics[name]["psnr"] > noisy["psnr"] + 1.0, (name, metrics)
        assert metrics[name]["ssim"] > noisy["ssim"], (name, metrics)
        curve = result["losses"][name]
        assert curve.shape == (100,) and np.all(np.isfinite(curve))
        assert curve[-10:].mean() < curve[:10].mean(), name
    # the printed table: one row per model with its PSNR and SSIM
    lines = out.splitlines()
    for name in ROWS:
        row = next(line for line in lines if line.startswith(name + " "))
        psnr, ssim = (float(v) for v in row[len(name):].split()[:2])
        assert psnr == pytest.approx(metrics[name]["psnr"], abs=0.01)
        assert ssim == pytest.approx(metrics[name]["ssim"], abs=1e-4)


def test_data_holds_out_the_right_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    example = _load_example()
    # stand-in photos whose pixel values encode (photo, column): a crop tells where it came from
    height, width = 60, 100
    columns = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :, None],
                              (height, width, 3))
    photos = {name: columns + 1000.0 * i for i, name in enumerate(example.PHOTOS)}
    monkeypatch.setattr(example, "load_photos", lambda: photos)
    monkeypatch.setattr(example, "HOLDOUT_COLUMNS", 30)
    data = example.make_data(0, train_crops=50, crop=12, test_crops=3, test_crop=16,
                             sigma=0.1)
    again = example.make_data(0, train_crops=50, crop=12, test_crops=3, test_crop=16,
                              sigma=0.1)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
        assert value.dtype == np.float32
    assert data["x_train"].shape == (50, 12, 12, 3)
    assert data["clean_test"].shape == data["noisy_test"].shape == (6, 16, 16, 3)
    train_columns = data["x_train"] % 1000.0
    test_columns = data["clean_test"] % 1000.0
    assert train_columns.max() < width - 30 <= test_columns.min()  # disjoint regions
    # both photos in training; the held-out crops alternate between them
    assert set(np.unique(data["x_train"] // 1000.0)) == {0.0, 1.0}
    np.testing.assert_array_equal(data["clean_test"][:, 0, 0, 0] // 1000.0, [0, 1] * 3)
    noise = data["noisy_test"] - data["clean_test"]
    assert abs(noise.std() - 0.1) < 0.01 and abs(noise.mean()) < 0.01


def test_real_photos_load_in_unit_range() -> None:
    example = _load_example()
    photos = example.load_photos()
    assert tuple(photos) == example.PHOTOS
    for image in photos.values():
        assert image.shape == (427, 640, 3) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_untrained_denoiser_is_the_identity() -> None:
    example = _load_example()
    model = example.Denoiser(8, 3, rngs=nnx.Rngs(0))
    noisy = jax.random.uniform(jax.random.key(0), (2, 20, 24, 3))
    np.testing.assert_array_equal(np.asarray(model(noisy)), np.asarray(noisy))
    assert len(model.hidden) == 2  # depth 3 = two hidden convolutions + the output one


def test_quality_metrics_match_their_definitions() -> None:
    example = _load_example()
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.0, 1.0, (3, 32, 32, 3)).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal(clean.shape)).astype(np.float32)
    psnr, ssim = example.quality(jnp.asarray(noisy), jnp.asarray(clean))
    mse = np.mean((noisy.astype(np.float64) - clean) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(psnr, 10.0 * np.log10(1.0 / mse), rtol=1e-5)
    assert psnr.shape == ssim.shape == (3,)
    assert np.all(ssim < 1.0) and np.all(ssim > 0.0)
    _, same = example.quality(jnp.asarray(clean), jnp.asarray(clean))
    np.testing.assert_allclose(same, 1.0, atol=1e-5)
