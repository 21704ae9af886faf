"""The battery every registered loss goes through (STYLE.md rule 8).

jit equals eager, vmap equals a loop, float32/bfloat16/float16, finite value
and gradient at the extremes, ``where`` equals slicing (with NaN planted in
the masked entries), reduction consistency, weights, and the error text for
integer predictions, unknown reductions and mismatched shapes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
import tests
from tests._case import Case


def _all_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for info in pkgutil.iter_modules(tests.__path__):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.{info.name}")
            cases.update(module.CASES)
    return cases


CASES = _all_cases()
BUILTIN = [n for n in jaxloss.names() if n in jaxloss.registry._BUILTIN]


def test_every_registered_loss_has_a_case():
    missing = sorted(set(BUILTIN) - set(CASES))
    assert not missing, f"registered losses without a battery case: {missing}"


def _case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"{name} has no battery case")
    return CASES[name]


def _loss(name: str):
    fn = jaxloss.get(name)
    adapt = _case(name).adapt
    return fn if adapt is None else adapt(fn)


def _inputs(name: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    args, kwargs = _case(name).make(rng)
    return tuple(jnp.asarray(a) for a in args), kwargs


# The suite is compile-bound, so the checks of one loss share their jitted
# programs (tests/conftest.py keeps a loss's battery tests together on one
# xdist worker): "reductions" maps the case's arrays to the loss under the
# three reductions, in one program.
_PROGRAMS: dict[tuple[str, int, str], Any] = {}


def _reductions(name: str, seed: int = 0):
    """``jit(args -> (mean, sum, none))`` at the keyword arguments of ``_inputs(name, seed)``."""
    key = (name, seed, "reductions")
    if key not in _PROGRAMS:
        fn = _loss(name)
        _, kwargs = _inputs(name, seed)
        _PROGRAMS[key] = jax.jit(
            lambda *a: tuple(fn(*a, **kwargs, reduction=r) for r in ("mean", "sum", "none")))
    return _PROGRAMS[key]


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol
    )


@pytest.mark.parametrize("name", BUILTIN)
def test_jit_equals_eager(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    jitted = _reductions(name)(*args)  # one program for the three reductions
    for reduction, got in zip(("mean", "sum", "none"), jitted, strict=True):
        eager = fn(*args, **kwargs, reduction=reduction)
        assert got.shape == eager.shape
        _close(got, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", BUILTIN)
def test_vmap_equals_loop(name):
    fn = _loss(name)
    draws = [_inputs(name, seed) for seed in range(3)]
    kwargs = draws[0][1]
    stacked = [jnp.stack([d[0][i] for d in draws]) for i in range(len(draws[0][0]))]
    batched = jax.jit(jax.vmap(lambda *a: fn(*a, **kwargs)))(*stacked)
    looped = jnp.stack([fn(*d[0], **kwargs) for d in draws])
    _close(batched, looped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", BUILTIN)
def test_half_precision(name, dtype):
    case = _case(name)
    fn = _loss(name)
    args, kwargs = _inputs(name)
    half = tuple(a.astype(dtype) if i in case.float_args else a for i, a in enumerate(args))
    # The float32 reference sees the same (rounded) inputs, so only the
    # output's rounding to half precision separates the two.
    rounded = tuple(a.astype(jnp.float32) if i in case.float_args else a
                    for i, a in enumerate(half))
    out = fn(*half, **kwargs)
    assert out.dtype == dtype, f"{name} returned {out.dtype} for {dtype} inputs"
    reference = fn(*rounded, **kwargs)
    _close(out.astype(jnp.float32), reference, rtol=case.half_rtol, atol=case.half_rtol)


def _settings_key(kwargs: dict[str, Any]) -> tuple:
    """A hashable key equal for equal keyword arguments (arrays compared by content)."""
    def freeze(v):
        if isinstance(v, np.ndarray | jax.Array):
            v = np.asarray(v)
            return ("array", v.dtype.str, v.shape, v.tobytes())
        if isinstance(v, dict):
            return ("dict", _settings_key(v))
        if isinstance(v, list | tuple):
            return (type(v).__name__, tuple(freeze(x) for x in v))
        return (type(v).__name__, repr(v))

    return tuple(sorted((k, freeze(v)) for k, v in kwargs.items()))


@pytest.mark.parametrize("name", BUILTIN)
def test_finite_at_extremes(name):
    case = _case(name)
    fn = _loss(name)
    extremes = case.extremes()
    assert extremes, f"{name} has no extreme inputs in its case"
    # One jitted program per setting (value, gradient and unreduced loss
    # together), so inputs of the same shapes at one setting share a
    # compilation instead of each being dispatched op by op.
    programs = {}
    for args, kwargs in extremes:
        args = tuple(jnp.asarray(a) for a in args)
        key = _settings_key(kwargs)
        if key not in programs:
            def program(x, *rest, kw=kwargs):
                value, grad = jax.value_and_grad(lambda y: fn(y, *rest, **kw))(x)
                return value, grad, fn(x, *rest, **kw, reduction="none")

            programs[key] = jax.jit(program)
        value, grad, unreduced = programs[key](*args)
        assert np.isfinite(float(value)), f"{name}: value {value} at extreme input {kwargs}"
        assert np.all(np.isfinite(np.asarray(grad))), f"{name}: non-finite gradient {kwargs}"
        assert np.all(np.isfinite(np.asarray(unreduced)))


@pytest.mark.parametrize("name", BUILTIN)
def test_random_gradient_finite_and_jittable(name):
    fn = _loss(name)
    args, kwargs = _inputs(name, seed=5)
    grad = jax.jit(jax.grad(lambda x, *rest: fn(x, *rest, **kwargs)))(*args)
    assert grad.shape == args[0].shape
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("name", BUILTIN)
def test_reductions_consistent(name):
    case = _case(name)
    args, _ = _inputs(name)
    mean, total, none = _reductions(name)(*args)
    _close(total, jnp.sum(none), rtol=1e-5, atol=1e-5)
    if case.mean_is_mean_of_none:
        _close(mean, jnp.mean(none), rtol=1e-5, atol=1e-6)
    assert none.shape[0] == args[0].shape[0], "unreduced loss must keep the batch axis first"


@pytest.mark.parametrize("name", BUILTIN)
def test_weights(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    mean, total, none = _reductions(name)(*args)
    shape = none.shape
    twos = jnp.full(shape, 2.0, jnp.float32)
    # Zero weight on one batch entry equals dropping it.
    w = jnp.ones(shape, jnp.float32).at[0].set(0.0)
    m = jnp.ones(shape, bool).at[0].set(False)

    @jax.jit  # the weighted and masked losses in one program
    def weighted(a, twos, w, m):
        return (fn(*a, **kwargs, weights=twos), fn(*a, **kwargs, weights=twos, reduction="sum"),
                fn(*a, **kwargs, weights=w), fn(*a, **kwargs, where=m))

    doubled_mean, doubled_sum, zero_weight, masked = weighted(args, twos, w, m)
    _close(doubled_mean, mean, rtol=1e-5, atol=1e-6)
    _close(doubled_sum, 2 * total, rtol=1e-5, atol=1e-5)
    _close(zero_weight, masked, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BUILTIN)
def test_where_equals_slicing_and_blocks_nan(name):
    case = _case(name)
    fn = _loss(name)
    args, kwargs = _inputs(name)
    batch_args = range(len(args)) if case.batch_args is None else case.batch_args
    unreduced = _reductions(name)(*args)[2]
    n = unreduced.shape[0]
    keep = np.arange(n) % 2 == 0
    where = jnp.asarray(keep).reshape((n,) + (1,) * (unreduced.ndim - 1))
    sliced = tuple(a[keep] if i in batch_args else a for i, a in enumerate(args))
    poisoned = args[0].at[~keep].set(jnp.nan)
    nothing = jnp.zeros_like(where)

    @jax.jit  # every loss this check compares, in one program
    def program(a, s, where, poisoned, nothing):
        def masked(x, w):
            return fn(x, *a[1:], **kwargs, where=w)

        return (
            {r: (fn(*a, **kwargs, where=where, reduction=r), fn(*s, **kwargs, reduction=r))
             for r in ("mean", "sum")},
            fn(*s, **kwargs),
            jax.value_and_grad(masked)(poisoned, where),
            jax.value_and_grad(masked)(a[0], nothing),
        )

    by_reduction, sliced_default, (value, grad), (nothing_value, nothing_grad) = program(
        args, sliced, where, poisoned, nothing)
    for reduction in ("mean", "sum"):
        _close(*by_reduction[reduction], rtol=1e-5, atol=1e-6)
    # NaN in masked-out entries of the first input reaches neither value nor gradient.
    _close(value, sliced_default, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad))), f"{name}: NaN leaked through where="
    assert np.all(np.asarray(grad)[~keep] == 0)
    # Nothing selected: 0, not NaN, and a zero gradient.
    assert float(nothing_value) == 0.0
    assert np.all(np.asarray(nothing_grad) == 0)


def _first_param_name(fn) -> str:
    return next(iter(inspect.signature(fn).parameters))


@pytest.mark.parametrize("name", BUILTIN)
def test_error_integer_predictions(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    bad = (jnp.ones(args[0].shape, jnp.int32),) + args[1:]
    with pytest.raises(TypeError, match=_first_param_name(fn)):
        fn(*bad, **kwargs)


@pytest.mark.parametrize("name", BUILTIN)
def test_error_unknown_reduction(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    with pytest.raises(ValueError, match="reduction"):
        fn(*args, **kwargs, reduction="avg")


@pytest.mark.parametrize("name", [n for n in BUILTIN if n in CASES and CASES[n].elementwise])
def test_error_mismatched_shapes(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    params = list(inspect.signature(fn).parameters)
    # (..., K) against (..., K, 1): the classic (N,) versus (N, 1) mistake.
    with pytest.raises(ValueError, match=params[1]):
        fn(args[0], args[1][..., None], *args[2:], **kwargs)


@pytest.mark.parametrize("name", BUILTIN)
def test_error_bad_where_shape(name):
    fn = _loss(name)
    args, kwargs = _inputs(name)
    shape = _reductions(name)(*args)[2].shape
    bad = jnp.ones(shape + (3,), bool)
    with pytest.raises(ValueError, match="where"):
        fn(*args, **kwargs, where=bad)


@pytest.mark.parametrize("name", BUILTIN)
def test_forward_mode_equals_reverse_mode(name):
    """jacfwd works (no custom_vjp without a jvp) and agrees with grad."""
    fn = _loss(name)
    args, kwargs = _inputs(name, seed=3)

    def loss(x):
        return fn(x, *args[1:], **kwargs)

    # Both modes in one jitted program: one compilation, not two op-by-op passes.
    forward, reverse = jax.jit(lambda x: (jax.jacfwd(loss)(x), jax.grad(loss)(x)))(args[0])
    _close(forward, reverse, rtol=1e-4, atol=1e-6)
