"""Batch-pooled losses under shard_map equal the single-device result on the global batch.

The check runs in a subprocess, so that XLA_FLAGS can ask for 8 CPU devices
before JAX is imported there.
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
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(16, 5, 6, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=(16, 5, 6)), jnp.int32)

    cases = {
        "dice_loss": dict(per_image=False),
        "jaccard_loss": dict(),
        "tversky_loss": dict(per_image=False, alpha=0.3, beta=0.7),
        "focal_tversky_loss": dict(per_image=False),
        "generalized_dice_loss": dict(),
    }
    for name, kwargs in cases.items():
        fn = jaxloss.get(name, **kwargs)
        expected, expected_grad = jax.value_and_grad(fn)(logits, labels)

        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"), P("data")),
                           out_specs=P())
        def sharded(x, t, fn=fn):
            return fn(x, t, axis_name="data")

        # Value and gradient in one jitted program (one compilation, not two).
        got, got_grad = jax.jit(jax.value_and_grad(sharded))(logits, labels)
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-7, err_msg=name)
        print("ok", name)
    """
)


def test_pooled_losses_sharded_over_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 5, result.stdout
