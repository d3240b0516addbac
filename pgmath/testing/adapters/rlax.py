"""DeepMind rlax (JAX): GAE, returns and the PPO clipped surrogate.

Bridges: the ``"rlax"`` conventions of :mod:`pgmath.testing.conventions` (one sequence per call,
``discount_t = γ(1 − done)``, NumPy arrays in, JAX arrays out); the PPO loss takes the ratio and
the advantages as ``[T]`` vectors (a ``[B, L]`` grid is flattened, no mask) and, being JAX, is
checked on values only (its gradient is JAX's, not torch's). JAX computes in float32 unless
``jax_enable_x64`` is set; the checks judge its output at its own dtype.
"""

from __future__ import annotations

from pgmath.testing.adapters import Entry

DISTRIBUTION = "rlax"


def entries() -> list[Entry]:
    import rlax

    return [
        Entry("rlax.truncated_generalized_advantage_estimation", "check_gae", {"convention": "rlax"},
              rlax.truncated_generalized_advantage_estimation, "convention 'rlax' (one sequence, discount_t)"),
        Entry("rlax.discounted_returns", "check_returns", {"convention": "rlax"}, rlax.discounted_returns,
              "convention 'rlax' (r_t, discount_t, v_t)"),
        Entry("rlax.clipped_surrogate_pg_loss", "check_ppo_loss", {"convention": "rlax", "clip_eps": 0.2},
              rlax.clipped_surrogate_pg_loss, "convention 'rlax' (ratio and advantages as [T] NumPy vectors)"),
    ]
