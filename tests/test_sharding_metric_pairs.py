"""Batch-wide pair, ranking and proxy losses under shard_map equal the single-device loss
of the global batch.

Runs in a subprocess so that XLA_FLAGS can ask for 8 CPU devices before JAX
is imported there (the pattern of tests/test_sharding.py).
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
    x = jnp.asarray(rng.normal(size=(24, 6)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, size=24), jnp.int32)
    keep = jnp.asarray(rng.random(24) < 0.7)
    w = jnp.asarray(rng.uniform(0.5, 2.0, size=24), jnp.float32)
    # Five proxies for labels in [0, 4): one proxy without a positive row.
    proxies = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)

    # Every mining strategy and every reduction, not their full product (the
    # sharded mining and the sharded reductions are separate code paths).
    cases = [("batch_triplet_loss", dict(mining=mining, margin=0.4, reduction=reduction))
             for mining, reduction in (("all", "mean"), ("all", "avg_non_zero"),
                                       ("hard", "sum"), ("semihard", "avg_non_zero"),
                                       ("semihard", "mean"))]
    cases += [
        ("batch_triplet_loss", dict(mining="hard", distance="cosine", margin=0.2)),
        ("npair_loss", dict()),
        ("npair_loss", dict(normalize=False, reduction="sum")),
        ("circle_loss", dict(gamma=20.0)),
        ("circle_loss", dict(reduction="avg_non_zero")),
        ("multi_similarity_loss", dict()),
        ("multi_similarity_loss", dict(beta=10.0, reduction="sum")),
        ("lifted_structure_loss", dict(neg_margin=0.8)),
        ("fast_ap_loss", dict(num_bins=8, reduction="sum")),
    ]
    # Losses with replicated parameters (P() in the mesh): the gradient is checked for
    # them too, and the dense and the blockwise (scanned) proxy paths are both covered.
    cases = [(name, kwargs, ()) for name, kwargs in cases] + [
        ("proxy_anchor_loss", dict(alpha=8.0), (proxies,)),
        ("proxy_anchor_loss", dict(block_size=2, reduction="sum"), (proxies,)),
    ]
    count = 0
    for name, kwargs, params in cases:
        fn = jaxloss.get(name)
        maskings = (False, True)

        # Per case, one jitted program computes every single-device result and
        # one every sharded result (a compilation each, not one per check).
        @jax.jit
        def single_all(e, t, k, v, p, fn=fn, kwargs=kwargs):
            def single(e, p, masked):
                extra = dict(where=k, weights=v) if masked else {}
                return fn(e, t, *p, **kwargs, **extra)

            return ([jax.value_and_grad(single, argnums=(0, 1))(e, p, masked)
                     for masked in maskings],
                    fn(e, t, *p, **{**kwargs, "reduction": "none"}))

        @jax.jit
        def sharded_all(e, t, k, v, p, fn=fn, kwargs=kwargs):
            out = []
            for masked in maskings:
                @functools.partial(jax.shard_map, mesh=mesh,
                                   in_specs=(P("data"), P("data"), P("data"), P("data"), P()),
                                   out_specs=P())
                def sharded(e, t, k, v, p, masked=masked):
                    more = dict(where=k, weights=v) if masked else {}
                    return fn(e, t, *p, **kwargs, **more, axis_name="data")

                out.append(jax.value_and_grad(sharded, argnums=(0, 4))(e, t, k, v, p))

            # reduction="none" per local row equals the global per-row losses.
            @functools.partial(jax.shard_map, mesh=mesh,
                               in_specs=(P("data"), P("data"), P()), out_specs=P("data"))
            def rows(e, t, p):
                return fn(e, t, *p, **{**kwargs, "reduction": "none"}, axis_name="data")

            return out, rows(e, t, p)

        expected_all, expected_rows = single_all(x, labels, keep, w, params)
        got_all, got_rows = sharded_all(x, labels, keep, w, params)
        for (expected, expected_grads), (got, got_grads) in zip(expected_all, got_all):
            assert float(expected) > 0, (name, kwargs)
            np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=f"{name} {kwargs}")
            for expected_grad, got_grad in zip(jax.tree.leaves(expected_grads),
                                               jax.tree.leaves(got_grads), strict=True):
                scale = float(jnp.max(jnp.abs(expected_grad)))
                assert scale > 0, (name, kwargs)
                np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-4,
                                           atol=1e-6 * scale, err_msg=f"{name} {kwargs} grad")
            count += 1
        np.testing.assert_allclose(got_rows, expected_rows,
                                   rtol=1e-5, atol=1e-6, err_msg=f"{name} {kwargs} none")
    print("ok", count)
    """
)


def test_batch_pair_losses_sharded_over_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok 32" in result.stdout, result.stdout  # 16 cases, unmasked and masked
