"""Test configuration: strict promotion so silent broadcasting or dtype mixing fails.

Sets, before any test runs:
  * ``jax_numpy_rank_promotion = "raise"``: ``(N,)`` against ``(N, 1)`` and
    other implicit rank promotion is an error, in jaxloss and in the tests.
  * ``jax_numpy_dtype_promotion = "strict"``: no implicit float32/bfloat16 or
    int/float mixing.
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
