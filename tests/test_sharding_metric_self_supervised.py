"""Self-supervised losses under shard_map equal the single-device loss on the global batch.

Runs in a subprocess so that XLA_FLAGS can ask for 8 CPU devices before JAX
is imported there. Each loss is called as ``loss(x_local, y_local,
axis_name="data")`` inside ``shard_map`` with ``out_specs=P()``; value and
gradient (w.r.t. both arrays) must equal the unsharded call, for the dense and
the chunked paths, with and without ``where``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent

_SCRIPT = textwrap.dedent(
    """
    import functools
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss

    assert jax.device_count() == 8, jax.devices()
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    n, d = 24, 5
    a = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    b = jnp.asarray(a + 0.5 * rng.normal(size=(n, d)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, size=(n,)), jnp.int32)
    keep = jnp.asarray(np.arange(n) % 5 != 3)

    cases = [
        ("ntxent_loss", labels, dict(temperature=0.2)),
        ("ntxent_loss", labels, dict(temperature=0.2, block_size=5)),
        ("info_nce_loss", b, dict(temperature=0.3)),
        ("info_nce_loss", b, dict(temperature=0.3, block_size=4)),
        ("supcon_loss", labels, dict()),
        ("supcon_loss", labels, dict(block_size=7)),
        ("clip_loss", b, dict(temperature=0.1)),
        ("clip_loss", b, dict(temperature=0.1, block_size=5)),
        ("siglip_loss", b, dict()),
        ("siglip_loss", b, dict(scale=4.0, bias=-1.0, block_size=6)),
        ("barlow_twins_loss", b, dict()),
        ("vicreg_loss", b, dict()),
    ]
    for index, (name, second, kwargs) in enumerate(cases):
        argnums = (0,) if second.dtype == jnp.int32 else (0, 1)
        # Unmasked mean always; the masked mean and the masked sum alternate
        # between a loss's dense and chunked cases.
        masked_reduction = "mean" if index % 2 == 0 else "sum"
        settings = ((False, "mean"), (True, masked_reduction))
        fn = jaxloss.get(name, **kwargs)

        # Per case, one jitted program computes every single-device result and
        # one every sharded result (a compilation each, not one per check).
        @jax.jit
        def single_all(x, y, k, fn=fn, argnums=argnums, settings=settings):
            out = []
            for masked, reduction in settings:
                def single(x, y, where=k if masked else None, reduction=reduction):
                    return fn(x, y, where=where, reduction=reduction)

                out.append(jax.value_and_grad(single, argnums=argnums)(x, y))
            return out, fn(x, y, reduction="none")

        @jax.jit
        def sharded_all(x, y, k, fn=fn, argnums=argnums, settings=settings):
            out = []
            for masked, reduction in settings:
                specs = (P("data"), P("data")) + ((P("data"),) if masked else ())

                @functools.partial(jax.shard_map, mesh=mesh, in_specs=specs, out_specs=P())
                def sharded(x, y, *w, reduction=reduction):
                    return fn(x, y, where=w[0] if w else None, reduction=reduction,
                              axis_name="data")

                extra = (k,) if masked else ()
                out.append(jax.value_and_grad(sharded, argnums=argnums)(x, y, *extra))

            # reduction="none" returns the local rows' values.
            @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"), P("data")),
                               out_specs=P("data"))
            def unreduced(x, y):
                return fn(x, y, reduction="none", axis_name="data")

            return out, unreduced(x, y)

        expected_all, expected_rows = single_all(a, second, keep)
        got_all, got_rows = sharded_all(a, second, keep)
        for (masked, reduction), (expected, expected_grads), (got, got_grads) in zip(
                settings, expected_all, got_all):
            msg = f"{name} {kwargs} where={masked} {reduction}"
            np.testing.assert_allclose(got, expected, rtol=2e-5, err_msg=msg)
            for g, e in zip(got_grads, expected_grads):
                scale = float(jnp.max(jnp.abs(e)))
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5 * scale, err_msg=msg)
        np.testing.assert_allclose(got_rows, expected_rows, rtol=2e-5, atol=1e-6, err_msg=name)
        print("ok", name, kwargs)
    """
)


def test_self_supervised_losses_sharded_over_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 12, result.stdout
