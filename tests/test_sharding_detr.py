"""detr_criterion under shard_map with axis_name equals the single-device loss of the batch.

Runs in a subprocess so that XLA_FLAGS can ask for 8 CPU devices before JAX
is imported there (the pattern of tests/test_sharding.py). The images are
spread over the 8 devices with different numbers of targets (one image and
one whole device without any), so that the global number of boxes differs
from every device's own: only the ``psum``-ed normaliser gives the global loss.
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
    n, q, m, k = 16, 6, 4, 4
    logits = jnp.asarray(rng.normal(size=(n, q, k)), jnp.float32)
    boxes = jnp.asarray(np.concatenate([rng.uniform(0.2, 0.8, (n, q, 2)),
                                        rng.uniform(0.1, 0.3, (n, q, 2))], -1), jnp.float32)
    labels = jnp.asarray(rng.integers(0, k - 1, (n, m)), jnp.int32)
    t_boxes = jnp.asarray(np.concatenate([rng.uniform(0.2, 0.8, (n, m, 2)),
                                          rng.uniform(0.1, 0.3, (n, m, 2))], -1), jnp.float32)
    counts = rng.integers(0, m + 1, n)
    counts[:2] = 0                                  # device 0 holds no target at all
    mask = jnp.asarray(np.arange(m)[None] < counts[:, None])
    # the softmax criterion (the focal one psums the same normaliser)
    for focal in (False,):
        x = logits

        def loss(x, b, labels, t_boxes, mask, axis_name=None, focal=focal):
            return jaxloss.detr_criterion(x, b, labels, t_boxes, mask, focal=focal,
                                          axis_name=axis_name)[0]

        expected, expected_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
            x, boxes, labels, t_boxes, mask)

        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"),) * 5,
                           out_specs=P())
        def sharded(*args):
            return loss(*args, axis_name="data")

        got, got_grad = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1)))(
            x, boxes, labels, t_boxes, mask)
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=str(focal))
        for g, e in zip(got_grad, expected_grad):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7, err_msg=str(focal))
        print("ok", focal)
    """
)


def test_detr_criterion_sharded_over_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 1, result.stdout
