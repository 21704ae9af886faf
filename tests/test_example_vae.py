"""Smoke test of examples/vae.py: it runs end to end with a few epochs.

The script's ``main`` runs in this process (under the suite's strict rank
promotion; with standard dtype promotion, which optax's Adam needs) for 4
epochs, roughly 3-8 s on 2 CPU cores (mostly the compilations). The
negative ELBO must fall, on the training batches and on the held-out images,
and the KL term must be finite and positive. The other tests check the
example's ELBO terms against their closed forms in NumPy, the
reparameterisation and the image mosaic without training anything.
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
SCRIPT = ROOT / "examples" / "vae.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("vae_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vae_example_runs_and_the_elbo_improves(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    example = _load_example()
    # optax's Adam mixes its int32 step count with float32 (bias correction), which the
    # suite's strict promotion forbids: run the script as a user does, with standard promotion
    with jax.numpy_dtype_promotion("standard"):
        result = example.main(["--epochs", "4", "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    png = tmp_path / "vae_samples.png"
    assert result["png"] == png and png.is_file()
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert str(png) in out
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    for h in history:
        for key in ("recon", "kl", "test_recon", "test_kl"):
            assert math.isfinite(h[key]), h
        assert h["kl"] > 0.0 and h["test_kl"] > 0.0, h
        assert h["loss"] == pytest.approx(h["recon"] + h["kl"])
    first, last = history[0], history[-1]
    assert last["loss"] < first["loss"] - 3.0, history  # ~36 -> ~27 nats per image
    assert last["test_loss"] < first["test_loss"], history
    # the Bernoulli cross-entropy against soft targets is at least their entropy
    test_floor = example.target_entropy(example.load_data(1)["x_test"])
    assert all(h["test_recon"] > test_floor for h in history)
    # the printed table: one row per epoch with six numbers
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    for row, h in zip(rows, history, strict=True):
        values = [float(v) for v in row[1:]]
        expected = [h["recon"], h["kl"], h["loss"], h["test_recon"], h["test_kl"],
                    h["test_loss"]]
        np.testing.assert_allclose(values, expected, atol=1e-3)


def test_elbo_terms_match_the_closed_forms() -> None:
    example = _load_example()
    model = example.VAE(latent_dim=3, hidden=16, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (5, example.PIXELS))
    key = jax.random.key(2)
    reconstruction, kl = example.elbo_terms(model, x, key)
    assert reconstruction.shape == kl.shape == (5,)
    # the same computation, term by term, in float64 NumPy
    mean, logvar = (np.asarray(a, np.float64) for a in model.encode(x))
    eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
    z = mean + np.exp(0.5 * logvar) * eps
    logits = np.asarray(model.decode(jnp.asarray(z, jnp.float32)), np.float64)
    xn = np.asarray(x, np.float64)
    # Bernoulli negative log-likelihood from logits: softplus(l) - x * l, summed over pixels
    expected_reconstruction = np.sum(np.logaddexp(0.0, logits) - xn * logits, axis=-1)
    # KL(N(m, exp(lv)) || N(0, 1)) summed over the latent dimensions
    expected_kl = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
    np.testing.assert_allclose(reconstruction, expected_reconstruction, rtol=1e-5)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(kl) > 0.0)


def test_reparameterize_is_differentiable_and_has_the_right_moments() -> None:
    example = _load_example()
    mean = jnp.array([[0.5, -2.0]])
    logvar = jnp.array([[0.0, 2.0 * math.log(3.0)]])  # sigma 1 and 3
    keys = jax.random.split(jax.random.key(0), 20000)
    samples = jax.vmap(lambda k: example.reparameterize(k, mean, logvar))(keys)[:, 0]
    np.testing.assert_allclose(samples.mean(axis=0), [0.5, -2.0], atol=0.06)
    np.testing.assert_allclose(samples.std(axis=0), [1.0, 3.0], rtol=0.03)
    # d z / d mean = 1 and d z / d logvar = eps * sigma / 2, sample by sample
    key = jax.random.key(3)
    eps = jax.random.normal(key, mean.shape)
    grad_mean, grad_logvar = jax.grad(
        lambda m, lv: jnp.sum(example.reparameterize(key, m, lv)), argnums=(0, 1))(mean, logvar)
    np.testing.assert_allclose(grad_mean, np.ones((1, 2)))
    np.testing.assert_allclose(grad_logvar, 0.5 * eps * jnp.exp(0.5 * logvar), rtol=1e-6)


def test_tile_places_every_image() -> None:
    example = _load_example()
    images = np.arange(3 * example.PIXELS, dtype=np.float32).reshape(3, example.PIXELS)
    mosaic = example.tile(images, columns=2)
    side = example.SIDE
    assert mosaic.shape == (2 * side + 1, 2 * side + 1)
    np.testing.assert_array_equal(mosaic[:side, :side], images[0].reshape(side, side))
    np.testing.assert_array_equal(mosaic[:side, side + 1:], images[1].reshape(side, side))
    np.testing.assert_array_equal(mosaic[side + 1:, :side], images[2].reshape(side, side))
    assert np.all(np.isnan(mosaic[side, :])) and np.all(np.isnan(mosaic[side + 1:, side + 1:]))
