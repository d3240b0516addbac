"""DeepMind rlax (JAX): GAE, returns, the PPO clipped surrogate, V-trace and Retrace.

Bridges: the ``"rlax"`` conventions of :mod:`pgmath.testing.conventions` (one sequence per call,
``discount_t = γ(1 − done)``, NumPy arrays in, JAX arrays out); the PPO loss takes the ratio and
the advantages as ``[T]`` vectors (a ``[B, L]`` grid is flattened, no mask) and, being JAX, is
checked on values only (its gradient is JAX's, not torch's). V-trace and Retrace use the
``"rlax"`` / ``"rlax_discrete"`` conventions of :mod:`pgmath.testing.checks.offpolicy` (c̄ fixed at
1; with λ < 1 the V-trace advantage follows rlax's λ-mixed bootstrap, a convention difference the
check's notes name). JAX computes in float32 unless
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
        Entry("rlax.vtrace", "check_vtrace", {"convention": "rlax"}, rlax.vtrace,
              "convention 'rlax' (v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_; a truncation folded into r_t)"),
        Entry("rlax.vtrace_td_error_and_advantage", "check_vtrace", {"convention": "rlax"},
              rlax.vtrace_td_error_and_advantage,
              "convention 'rlax' (as rlax.vtrace; errors + v_tm1 are the targets, pg_advantage the advantages)"),
        Entry("rlax.retrace_continuous", "check_retrace", {"convention": "rlax"}, rlax.retrace_continuous,
              "convention 'rlax' (q_tm1, q_t [T−1], v_t = E_πQ, r_t, discount_t, log_rhos [T−1], lambda_)"),
        Entry("rlax.retrace", "check_retrace", {"convention": "rlax_discrete"}, rlax.retrace,
              "convention 'rlax_discrete' (two-action tables built so that Q(sₜ,aₜ), ρₜ and E_πQ are the drawn ones; eps=0)"),
    ]
