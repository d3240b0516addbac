"""Exact off-policy operators on tabular MDPs: V-trace and Retrace, their n-step forms and fixed points.

Data come from a behaviour policy μ; the target policy is π. Per state-action pair::

    ρ(s, a) = min(ρ̄, π(a|s)/μ(a|s))          (V-trace: weight of the TD error)
    c(s, a) = λ·min(c̄, π(a|s)/μ(a|s))        (V-trace: trace coefficient)
    c(s, a) = λ·min(1, π(a|s)/μ(a|s))         (Retrace(λ))

**V-trace** (Espeholt et al. 2018, eq. 1 and Remark 1). With δ̄(s) = Σₐ μ(a|s) ρ(s, a)(R(s, a) +
γ Σₛ' P(s'|s, a) V(s') − V(s)) the expected ρ-weighted TD error and C[s, s'] =
Σₐ μ(a|s) c(s, a) P(s'|s, a) the expected trace, the n-step operator (the expectation of the
n-step V-trace target vₛ, episodes cut after n steps and bootstrapped) and the full operator are::

    Rₙ V = V + Σ_{t<n} γᵗ Cᵗ δ̄            R V = V + (I − γC)⁻¹ δ̄

Its fixed point solves δ̄ = 0, i.e. with w(s, a) = μ(a|s) ρ(s, a) = min(ρ̄ μ(a|s), π(a|s))::

    Σₐ w(s, a)(R(s, a) + γ Σₛ' P(s'|s, a) V(s')) = V(s) Σₐ w(s, a)        (one linear solve)

which is the Bellman equation of π_ρ̄(a|s) = w(s, a) / Σ_b w(s, b): the fixed point is V^{π_ρ̄}
whatever c̄ and λ (Espeholt et al. 2018, Theorem 1). ρ̄ ≥ maxₛₐ π/μ gives V^π; ρ̄ ≤ minₛₐ π/μ gives
V^μ. :func:`vtrace_fixed_point` solves the linear system above (no normalisation);
:func:`vtrace_target_policy` builds π_ρ̄ so that its value can be computed independently by
policy evaluation.

**Retrace(λ)** (Munos et al. 2016, eq. 3). With δ(s, a) = R(s, a) + γ Σₛ' P(s'|s, a) Σ_b π(b|s')
Q(s', b) − Q(s, a) and K[(s, a), (s', a')] = P(s'|s, a) μ(a'|s') c(s', a')::

    Rₙ Q = Q + Σ_{t<n} γᵗ Kᵗ δ            R Q = Q + (I − γK)⁻¹ δ

so R Q = Q ⇔ δ = 0 ⇔ Q = Q^π, whatever λ and μ: :func:`retrace_fixed_point` solves the
state-action Bellman equation (I − γ P Π) Q = R directly (an |S||A| system, independent of the
state solve of :meth:`TabularMDP.action_values`).

Terminal states: absorbing, V = Q = 0 there (the values supplied to the operators are read as 0
on terminal states, as a sampled target never bootstraps from them); the trace stops there.

Sources: Espeholt et al., "IMPALA" (ICML 2018), §4.1, eq. 1, Theorem 1 and Remark 1; Munos,
Stepleton, Harutyunyan & Bellemare, "Safe and Efficient Off-Policy Reinforcement Learning"
(NeurIPS 2016), eq. 3–4 and Theorem 1.

Checked by: tests/test_mdp_offpolicy.py (fixed points against policy evaluation of π_ρ̄ and Q^π,
and against iterating the operators; n-step operators against their definitions summed term by
term; the sampled V-trace and Retrace targets of episodes drawn under μ unbiased for Rₙ, with a
biased target rejected), the specs ``vtrace_fixed_point`` and ``retrace_fixed_point`` of
:mod:`pgmath.specs.mdp_offpolicy` and their ``pgmath verify --area mdp`` rows. Docs:
docs/mdp/offpolicy.md.
"""

from __future__ import annotations

import torch

from pgmath.mdp.iterative_evaluation import iterative_action_values, iterative_policy_evaluation
from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import (
    validate_float_tensor,
    validate_nonnegative,
    validate_positive,
    validate_unit_interval,
)

__all__ = [
    "retrace_fixed_point",
    "retrace_fixed_point_reference",
    "retrace_operator",
    "validate_behaviour",
    "vtrace_fixed_point",
    "vtrace_fixed_point_reference",
    "vtrace_operator",
    "vtrace_target_policy",
]


def validate_behaviour(mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate target π and behaviour μ tables ``[S, A]`` (cast to the MDP dtype).

    Raises:
      ValueError naming ``pi`` or ``mu``: bad tables, or μ(a|s) = 0 where π(a|s) > 0 on a
      non-terminal state (the importance ratio π/μ is infinite there).
    """
    # rows validated in the caller's precision, then renormalised in the MDP's dtype: a bfloat16
    # π cast to float64 sums to 1 only within 2⁻⁹, and later solves re-validate it in float64
    pi = mdp.validate_policy(pi, "pi").detach()
    mu = mdp.validate_policy(mu, "mu").detach()
    pi, mu = pi / pi.sum(-1, keepdim=True), mu / mu.sum(-1, keepdim=True)
    live = ~mdp.terminal
    uncovered = (mu <= 0) & (pi > 0) & live[:, None]
    if bool(uncovered.any()):
        s, a = (int(i) for i in torch.nonzero(uncovered)[0])
        raise ValueError(
            f"mu must be positive wherever pi is: mu[{s}, {a}] = 0 but pi[{s}, {a}] > 0 "
            "(the importance ratio pi/mu is infinite there)"
        )
    return pi, mu


def _ratio(pi: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """π/μ, 0 where μ = 0 (then π = 0 too, or the state is terminal)."""
    return torch.where(mu > 0, pi / torch.where(mu > 0, mu, torch.ones_like(mu)), torch.zeros_like(mu))


def _validate_steps(steps: object) -> int | None:
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be None or an integer >= 0, got {steps!r}")
    return steps


def _solve(M: torch.Tensor, b: torch.Tensor, what: str) -> torch.Tensor:
    try:
        x = torch.linalg.solve(M, b)
    except RuntimeError as exc:  # torch.linalg.LinAlgError subclasses RuntimeError
        raise ValueError(f"the {what} is singular: {exc}") from None
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"the {what} is numerically singular (gamma = 1 and a policy that never terminates)")
    return x


def vtrace_target_policy(mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, *, rho_bar: float = 1.0) -> torch.Tensor:
    """π_ρ̄(a|s) = min(ρ̄ μ(a|s), π(a|s)) / Σ_b min(ρ̄ μ(b|s), π(b|s)), ``[S, A]``.

    The policy whose value V-trace with truncation level ρ̄ converges to (Espeholt et al. 2018,
    Theorem 1). Args: ``pi``, ``mu`` ``[S, A]`` target and behaviour tables; ``rho_bar`` > 0.
    """
    rho_bar = validate_positive(rho_bar, "rho_bar")
    pi, mu = validate_behaviour(mdp, pi, mu)
    w = torch.minimum(rho_bar * mu, pi)
    return w / w.sum(-1, keepdim=True)


def vtrace_fixed_point(
    mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, *, rho_bar: float = 1.0, c_bar: float = 1.0
) -> torch.Tensor:
    """The fixed point V ``[S]`` of the V-trace operator, by one linear solve.

    Solves Σₐ w(s, a)(R(s, a) + γ Σₛ' P(s'|s, a) V(s')) = V(s) Σₐ w(s, a) on non-terminal states
    (V = 0 on terminal ones), w(s, a) = min(ρ̄ μ(a|s), π(a|s)): the ρ-weighted expected TD error
    under μ vanishes. Equals V^{π_ρ̄} (:func:`vtrace_target_policy`; Espeholt et al. 2018,
    Theorem 1); c̄ does not move it (it only sets the contraction rate).

    Args:
      mdp: the MDP.
      pi: ``[S, A]`` target policy π(a|s).
      mu: ``[S, A]`` behaviour policy μ(a|s), positive wherever π is.
      rho_bar: ρ̄ > 0, truncation of the importance weight of the TD error.
      c_bar: c̄ ≥ 0, truncation of the trace (validated; no effect on the fixed point).

    Raises:
      ValueError naming the argument: ρ̄ ≤ 0, c̄ < 0, μ = 0 where π > 0, bad tables, or γ = 1
      with π_ρ̄ never terminating (singular system).
    """
    rho_bar = validate_positive(rho_bar, "rho_bar")
    validate_nonnegative(c_bar, "c_bar")
    pi, mu = validate_behaviour(mdp, pi, mu)
    w = torch.minimum(rho_bar * mu, pi)
    n = torch.nonzero(~mdp.terminal).squeeze(1)
    W = w.sum(-1)[n]
    M = torch.diag(W) - mdp.gamma * torch.einsum("sa,sat->st", w, mdp.P)[n][:, n]
    V = torch.zeros(mdp.num_states, dtype=mdp.dtype, device=mdp.device)
    return V.index_put((n,), _solve(M, (w * mdp.R).sum(-1)[n], "V-trace fixed-point system"))


def _live_values(mdp: TabularMDP, V: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    validate_float_tensor(V, name)
    if tuple(V.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(V.shape)}")
    live = (~mdp.terminal).to(mdp.dtype)
    V = V.detach().to(dtype=mdp.dtype, device=mdp.device)
    return V * (live if V.dim() == 1 else live[:, None])


def vtrace_operator(
    mdp: TabularMDP,
    pi: torch.Tensor,
    mu: torch.Tensor,
    V: torch.Tensor,
    *,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    lam: float = 1.0,
    steps: int | None = None,
) -> torch.Tensor:
    """The V-trace operator applied to V: Rₙ V = V + Σ_{t<n} γᵗ Cᵗ δ̄ (``steps = n``), ``[S]``.

    ``steps=None`` gives the full operator V + (I − γC)⁻¹ δ̄ (one solve). Rₙ V(s) is the
    expected n-step V-trace target v₀ of an episode started in s under μ, cut after n steps
    (bootstrapped from V there) or at termination. V is read as 0 on terminal states.

    Args:
      mdp, pi, mu: as in :func:`vtrace_fixed_point`.
      V: ``[S]`` the value table the targets bootstrap from.
      rho_bar: ρ̄ ≥ 0; c_bar: c̄ ≥ 0; lam: λ ∈ [0, 1] (cₜ = λ min(c̄, ρₜ)).
      steps: n ≥ 0, or None for n = ∞.
    """
    rho_bar = validate_nonnegative(rho_bar, "rho_bar")
    c_bar = validate_nonnegative(c_bar, "c_bar")
    lam = validate_unit_interval(lam, "lam")
    steps = _validate_steps(steps)
    pi, mu = validate_behaviour(mdp, pi, mu)
    V = _live_values(mdp, V, "V", (mdp.num_states,))
    live = (~mdp.terminal).to(mdp.dtype)
    ratio = _ratio(pi, mu)
    rho = torch.clamp(ratio, max=rho_bar)
    c = lam * torch.clamp(ratio, max=c_bar)
    td = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V) - V[:, None]
    delta = (mu * rho * td).sum(-1) * live
    C = torch.einsum("sa,sat->st", mu * c, mdp.P) * live[:, None] * live[None, :]
    if steps is None:
        eye = torch.eye(mdp.num_states, dtype=mdp.dtype, device=mdp.device)
        return V + _solve(eye - mdp.gamma * C, delta, "V-trace operator (I - gamma C)")
    out, term = V.clone(), delta
    for _ in range(steps):  # term = γᵗ Cᵗ δ̄
        out = out + term
        term = mdp.gamma * (C @ term)
    return out


def retrace_fixed_point(mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, *, lam: float = 1.0) -> torch.Tensor:
    """The fixed point Q ``[S, A]`` of the Retrace(λ) operator: Q^π, by one state-action solve.

    Solves Q(s, a) = R(s, a) + γ Σₛ' P(s'|s, a) Σ_b π(b|s') Q(s', b) over non-terminal (s, a)
    (Q = 0 on terminal states): R Q = Q + (I − γK)⁻¹ δ(Q) has δ(Q) = 0 as its only fixed point,
    whatever λ and μ (Munos et al. 2016, Theorem 1). μ and λ are validated (μ > 0 where π > 0,
    λ ∈ [0, 1]) so that the call has the same contract as the sampled targets.

    Raises:
      ValueError naming the argument: bad tables, μ = 0 where π > 0, λ outside [0, 1], or γ = 1
      with π never terminating.
    """
    validate_unit_interval(lam, "lam")
    pi, mu = validate_behaviour(mdp, pi, mu)
    n = torch.nonzero(~mdp.terminal).squeeze(1)
    S, A = mdp.num_states, mdp.num_actions
    # M[(s, a), (s', b)] = P(s'|s, a) π(b|s') over non-terminal s, s'
    M = torch.einsum("sat,tb->satb", mdp.P[n][:, :, n], pi[n]).reshape(n.numel() * A, n.numel() * A)
    eye = torch.eye(n.numel() * A, dtype=mdp.dtype, device=mdp.device)
    if mdp.gamma == 1.0:
        mdp.state_values(pi)  # raises a ValueError naming the problem when π never terminates
    q = _solve(eye - mdp.gamma * M, mdp.R[n].reshape(-1), "Retrace fixed-point system")
    Q = torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device)
    return Q.index_put((n,), q.reshape(n.numel(), A))


def retrace_operator(
    mdp: TabularMDP,
    pi: torch.Tensor,
    mu: torch.Tensor,
    Q: torch.Tensor,
    *,
    lam: float = 1.0,
    steps: int | None = None,
) -> torch.Tensor:
    """The Retrace(λ) operator applied to Q: Rₙ Q = Q + Σ_{t<n} γᵗ Kᵗ δ (``steps = n``), ``[S, A]``.

    δ(s, a) = R(s, a) + γ Σₛ' P(s'|s, a) Σ_b π(b|s') Q(s', b) − Q(s, a) and
    K[(s, a), (s', a')] = P(s'|s, a) μ(a'|s') λ min(1, π(a'|s')/μ(a'|s')). Rₙ Q(s, a) is the
    expected n-step Retrace target of an episode started with (s, a), the later actions drawn
    from μ, cut after n steps (bootstrapped with Σ_b π(b|s) Q(s, b)) or at termination. Q is read
    as 0 on terminal states. ``steps=None``: Q + (I − γK)⁻¹ δ.
    """
    lam = validate_unit_interval(lam, "lam")
    steps = _validate_steps(steps)
    pi, mu = validate_behaviour(mdp, pi, mu)
    S, A = mdp.num_states, mdp.num_actions
    Q = _live_values(mdp, Q, "Q", (S, A))
    live = (~mdp.terminal).to(mdp.dtype)
    c = lam * torch.clamp(_ratio(pi, mu), max=1.0)
    expected_next = (pi * Q).sum(-1)  # Σ_b π(b|s) Q(s, b), 0 on terminal s
    delta = (mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, expected_next) - Q) * live[:, None]
    K = torch.einsum("sat,tb->satb", mdp.P * live[None, None, :], mu * c).reshape(S * A, S * A)
    K = K * live.repeat_interleave(A)[:, None]
    if steps is None:
        eye = torch.eye(S * A, dtype=mdp.dtype, device=mdp.device)
        return Q + _solve(eye - mdp.gamma * K, delta.reshape(-1), "Retrace operator (I - gamma K)").reshape(S, A)
    out, term = Q.clone(), delta.reshape(-1)
    for _ in range(steps):  # term = γᵗ Kᵗ δ
        out = out + term.reshape(S, A)
        term = mdp.gamma * (K @ term)
    return out


def vtrace_fixed_point_reference(
    mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, *, rho_bar: float = 1.0, c_bar: float = 1.0
) -> torch.Tensor:
    """V^{π_ρ̄} by plain loops: π_ρ̄ built entry by entry, then iterative policy evaluation
    (sweeps to 1e-12; :func:`pgmath.mdp.iterative_policy_evaluation`). The reference of
    :func:`vtrace_fixed_point` (Espeholt et al. 2018, Theorem 1)."""
    rho_bar = validate_positive(rho_bar, "rho_bar")
    validate_nonnegative(c_bar, "c_bar")
    pi, mu = validate_behaviour(mdp, pi, mu)
    target = torch.zeros_like(pi)
    # over states s: clip each action's weight at ρ̄ μ(a|s), then renormalise the row
    for s in range(mdp.num_states):
        row = [min(rho_bar * float(mu[s, a]), float(pi[s, a])) for a in range(mdp.num_actions)]
        total = sum(row)
        for a in range(mdp.num_actions):
            target[s, a] = row[a] / total
    return iterative_policy_evaluation(mdp, target)


def retrace_fixed_point_reference(
    mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, *, lam: float = 1.0
) -> torch.Tensor:
    """Q^π by iterative policy evaluation and a loop over (s, a)
    (:func:`pgmath.mdp.iterative_action_values`): the reference of :func:`retrace_fixed_point`."""
    validate_unit_interval(lam, "lam")
    pi, _ = validate_behaviour(mdp, pi, mu)
    return iterative_action_values(mdp, pi)
