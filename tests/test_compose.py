"""Terms, weighted sums, deep supervision and objectives."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss.compose import combine, deep_supervision, objective, term


def _data():
    rng = np.random.default_rng(0)
    predictions = {"depth": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32),
                   "logits": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
    targets = {"depth": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32),
               "label": jnp.asarray([0, 1, 2, 1], jnp.int32)}
    return predictions, targets


def test_weighted_sum_and_unweighted_parts():
    predictions, targets = _data()
    loss = combine(term(jaxloss.huber_loss, prediction="depth", target="depth", weight=0.3,
                        delta=0.5),
                   term("cross_entropy_loss", prediction="logits", target="label",
                        name="cls", label_smoothing=0.1))
    total, parts = loss(predictions, targets)
    huber = jaxloss.huber_loss(predictions["depth"], targets["depth"], delta=0.5)
    ce = jaxloss.cross_entropy_loss(predictions["logits"], targets["label"],
                                    label_smoothing=0.1)
    np.testing.assert_allclose(parts["depth/huber_loss"], huber, rtol=1e-6)
    np.testing.assert_allclose(parts["cls"], ce, rtol=1e-6)
    np.testing.assert_allclose(total, 0.3 * huber + ce, rtol=1e-6)


def test_scheduled_weight_needs_and_uses_step():
    predictions, targets = _data()
    schedule = optax.linear_schedule(0.0, 1.0, transition_steps=10)
    loss = combine(term("mse_loss", prediction="depth", target="depth", weight=schedule))
    mse = jaxloss.mse_loss(predictions["depth"], targets["depth"])
    total, _ = jax.jit(lambda p, t, s: loss(p, t, step=s))(predictions, targets, 5)
    np.testing.assert_allclose(total, 0.5 * mse, rtol=1e-6)
    with pytest.raises(ValueError, match="step"):
        loss(predictions, targets)


def test_terms_and_objectives_are_hashable_static_arguments():
    predictions, targets = _data()
    loss = combine(term("mse_loss", prediction="depth", target="depth"))
    again = combine(term("mse_loss", prediction="depth", target="depth"))
    assert hash(loss) == hash(again) and loss == again

    @functools.partial(jax.jit, static_argnums=0)
    def run(fn, p, t):
        return fn(p, t)[0]

    np.testing.assert_allclose(run(loss, predictions, targets),
                               jaxloss.mse_loss(predictions["depth"], targets["depth"]))


def test_errors_name_the_problem():
    predictions, targets = _data()
    with pytest.raises(ValueError, match="unique"):
        combine(term("mse_loss", prediction="depth", target="depth"),
                term("mse_loss", prediction="depth", target="depth"))
    with pytest.raises(KeyError, match="no loss named"):
        term("msee_loss", prediction="depth", target="depth")
    with pytest.raises(KeyError, match="nope"):
        combine(term("mse_loss", prediction="nope", target="depth"))(predictions, targets)
    with pytest.raises(ValueError, match="weight"):
        term("mse_loss", prediction="depth", target="depth", weight=-1.0)


def test_deep_supervision_resizes_targets_and_weights_scales():
    rng = np.random.default_rng(1)
    labels = jnp.asarray(rng.integers(0, 3, size=(2, 8, 8)), jnp.int32)
    outputs = [jnp.asarray(rng.normal(size=(2, s, s, 3)), jnp.float32) for s in (8, 4, 2)]
    ds = deep_supervision("cross_entropy_loss", weights="exp")
    expected = 0.0
    for w, out, stride in zip((4 / 7, 2 / 7, 1 / 7), outputs, (1, 2, 4), strict=True):
        # nearest-neighbour downsampling of an 8x8 map by an integer factor
        small = jax.image.resize(labels, (2, 8 // stride, 8 // stride), "nearest")
        expected += w * jaxloss.cross_entropy_loss(out, small)
    np.testing.assert_allclose(ds(outputs, labels), expected, rtol=1e-6)
    same = deep_supervision(jaxloss.cross_entropy_loss, weights=[1.0, 0.0, 0.0])
    np.testing.assert_allclose(same(outputs, labels),
                               jaxloss.cross_entropy_loss(outputs[0], labels), rtol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        deep_supervision("mse_loss", weights=[1.0, 1.0])(outputs, labels)
    with pytest.raises(ValueError, match="weights"):
        deep_supervision("mse_loss", weights="linear")
    grads = jax.grad(lambda o: ds(o, labels))(outputs)
    assert [g.shape for g in grads] == [o.shape for o in outputs]


def test_objective_trains_a_flax_nnx_model_with_optax():
    nnx = pytest.importorskip("flax.nnx")
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(64, 4)), jnp.float32)
    batch = {"inputs": x, "y": x @ jnp.array([1.0, -2.0, 0.5, 3.0]),
             "label": jnp.asarray((np.asarray(x[:, 0]) > 0).astype(np.int32))}

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.reg = nnx.Linear(4, 1, rngs=rngs)
            self.cls = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, inputs):
            return {"y": self.reg(inputs)[:, 0], "logits": self.cls(inputs)}

    model = Net(nnx.Rngs(0))
    graphdef, params = nnx.split(model)

    def apply_fn(p, inputs):
        return nnx.merge(graphdef, p)(inputs)

    obj = objective(apply_fn, combine(
        term("mse_loss", prediction="y", target="y"),
        term("cross_entropy_loss", prediction="logits", target="label", weight=0.5)))
    optimizer = optax.adam(0.05)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        (value, aux), grads = jax.value_and_grad(obj, has_aux=True)(params, batch)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value, aux["parts"]

    first = None
    # optax's adam mixes its int32 step count with Python floats, which the suite's
    # strict promotion (tests/conftest.py) refuses; jaxloss itself runs strict.
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(100):
            params, state, value, parts = step(params, state)
            first = value if first is None else first
    assert float(value) < 0.2 * float(first)
    assert set(parts) == {"y/mse_loss", "logits/cross_entropy_loss"}
