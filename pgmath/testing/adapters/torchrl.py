"""TorchRL: the functional value estimators of ``torchrl.objectives.value.functional`` (GAE,
TD(1) returns, V-trace).

Bridge: the ``"torchrl"`` calling convention of :mod:`pgmath.testing.conventions` (batch-major
``[N, T, 1]`` tensors, ``done``/``terminated`` flags, ``next_state_value`` per step) — the
functions are passed as they are.
"""

from __future__ import annotations

from pgmath.testing.adapters import Entry

DISTRIBUTION = "torchrl"


def entries() -> list[Entry]:
    from torchrl.objectives.value import functional as F

    bridge = "convention 'torchrl' ([N, T, 1], done/terminated, next_state_value)"
    out = []
    for name in ("generalized_advantage_estimate", "vec_generalized_advantage_estimate"):
        out.append(Entry(f"torchrl.objectives.value.functional.{name}", "check_gae",
                         {"convention": "torchrl"}, getattr(F, name), bridge))
    out.append(Entry("torchrl.objectives.value.functional.td1_return_estimate", "check_returns",
                     {"convention": "torchrl"}, F.td1_return_estimate, bridge))
    out.append(Entry("torchrl.objectives.value.functional.vec_td1_return_estimate", "check_returns",
                     {"convention": "torchrl"}, F.vec_td1_return_estimate, bridge))
    out.append(Entry("torchrl.objectives.value.functional.vtrace_advantage_estimate", "check_vtrace",
                     {"convention": "torchrl"}, F.vtrace_advantage_estimate,
                     "convention 'torchrl' ([N, T, 1], log_pi = log ρ, log_mu = 0, done/terminated, λ = 1)"))
    return out
