"""Off-policy returns and advantages: V-trace, Retrace(λ), Tree-backup, Q(λ), per-decision IS.

Data come from a behaviour policy μ; the targets are for a target policy π. Time-major
``[T, *B]`` tensors with the conventions of :mod:`pgmath.returns` (``next_values[t]`` is the value
of the observation after step t — a truncated episode's real final observation —; ``terminated``
stops bootstrapping; ``truncated`` bootstraps from ``next_values[t]``; the rollout's last step
bootstraps unless terminated). The importance ratio of step t is ρₜ = π(aₜ|sₜ)/μ(aₜ|sₜ), passed
as ``log_rhos[t] = log π(aₜ|sₜ) − log μ(aₜ|sₜ)`` (−inf allowed: π(aₜ|sₜ) = 0 gives ρₜ = 0).

Every estimator here is one trace recursion (:func:`trace_recursion`)::

    aₜ = δₜ + γ κₜ aₜ₊₁      inside an episode;   aₜ = δₜ   where an episode ends at t or t = T−1

* V-trace (Espeholt et al. 2018, eq. 1 and Remark 1): δₜ = min(ρ̄, ρₜ)(rₜ + γ(1 − termₜ)V(sₜ₊₁)
  − V(sₜ)), κₜ = cₜ = λ·min(c̄, ρₜ); the value target is vₜ = V(sₜ) + aₜ.
* Retrace(λ), Tree-backup(λ), Q(λ), importance sampling (Munos et al. 2016, eq. 3 and Table 1):
  δₜ = rₜ + γ(1 − termₜ) E_π Q(sₜ₊₁, ·) − Q(sₜ, aₜ), κₜ = cₜ₊₁ with cₛ = λ min(1, ρₛ) (Retrace),
  λ π(aₛ|sₛ) (Tree-backup, Precup et al. 2000), λ (Q(λ), Harutyunyan et al. 2016), ρₛ (IS); the
  Q target is Q(sₜ, aₜ) + aₜ.
* Per-decision importance sampling (Precup, Sutton & Singh 2000): Gₜ = ρₜ(rₜ + γ Gₜ₊₁), i.e.
  δₜ = ρₜ rₜ (+ ρₜ γ V(sₜ₊₁) where the episode is cut), κₜ = ρₜ.

The trace stops at a terminated *or* truncated step (the recursion never crosses into the next
episode), and a truncated step still bootstraps from ``next_values``.

Checked by: the specs of :mod:`pgmath.specs.offpolicy` (fast == plain loop for every backend,
closed forms: on-policy V-trace == λ-returns/GAE, λ = 0 → one-step targets, Retrace with π = μ ==
Q(λ), …; every catalogued wrong variant rejected), run by ``tests/test_specs.py``;
``tests/test_offpolicy.py``; proof ``proofs/vtrace.py``.
"""

from __future__ import annotations

import torch

from pgmath.returns import episode_stops
from pgmath.scan import Backend, compute_dtype, discounted_cumsum
from pgmath.validation import (
    validate_float_tensor,
    validate_nonnegative,
    validate_rollout,
    validate_same_shape,
    validate_unit_interval,
)

__all__ = [
    "per_decision_is_returns",
    "per_decision_is_returns_reference",
    "q_lambda",
    "q_lambda_reference",
    "retrace",
    "retrace_reference",
    "trace_recursion",
    "trace_recursion_reference",
    "tree_backup",
    "tree_backup_reference",
    "validate_log_ratios",
    "vtrace",
    "vtrace_reference",
]


# ---------------------------------------------------------------------------------------------
# input checks


def validate_log_ratios(x: object, name: str, rewards: torch.Tensor) -> torch.Tensor:
    """Log-probabilities or log-ratios: a float tensor shaped like ``rewards``, no NaN, no +inf
    (a behaviour probability 0 where the target's is positive); −inf (π = 0) is allowed."""
    t = validate_float_tensor(x, name, finite=False)
    validate_same_shape("rewards", rewards, **{name: t})
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    if bool((t == float("inf")).any()):
        raise ValueError(
            f"{name} contains +inf: the behaviour policy gives probability 0 to an action the "
            "target policy takes (the importance ratio is infinite)"
        )
    return t


def _rollout(rewards, values, next_values, terminated, truncated, gamma, lam, values_name="values"):
    if values is None:
        raise ValueError(f"{values_name} is required")
    if next_values is None:
        raise ValueError("next_values is required")
    term, trunc = validate_rollout(rewards, next_values=next_values, terminated=terminated,
                                   truncated=truncated)
    validate_float_tensor(values, values_name)
    validate_same_shape("rewards", rewards, **{values_name: values})
    return term, trunc, validate_unit_interval(gamma, "gamma"), validate_unit_interval(lam, "lam")


def _validate_target_log_probs(x: object, rewards: torch.Tensor) -> torch.Tensor:
    """Tree-backup's log π(aₜ|sₜ): as :func:`validate_log_ratios`, and ≤ 0."""
    lp = validate_log_ratios(x, "target_log_probs", rewards)
    if bool((lp > 0).any()):
        raise ValueError("target_log_probs must be <= 0 (log-probabilities)")
    return lp


def _pdis_args(log_rhos, rewards, next_values, terminated, truncated, gamma):
    term, trunc = validate_rollout(rewards, next_values=next_values, terminated=terminated,
                                   truncated=truncated)
    gamma = validate_unit_interval(gamma, "gamma")
    return validate_log_ratios(log_rhos, "log_rhos", rewards), term, trunc, gamma


def _vtrace_args(log_rhos, rewards, values, next_values, terminated, truncated, gamma, lam,
                 rho_bar, c_bar, pg_rho_bar):
    term, trunc, gamma, lam = _rollout(rewards, values, next_values, terminated, truncated, gamma, lam)
    lr = validate_log_ratios(log_rhos, "log_rhos", rewards)
    rho_bar = validate_nonnegative(rho_bar, "rho_bar")
    c_bar = validate_nonnegative(c_bar, "c_bar")
    pg_rho_bar = rho_bar if pg_rho_bar is None else validate_nonnegative(pg_rho_bar, "pg_rho_bar")
    return lr, term, trunc, gamma, lam, rho_bar, c_bar, pg_rho_bar


# ---------------------------------------------------------------------------------------------
# the general recursion


def trace_recursion(
    deltas: torch.Tensor,
    traces: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    backend: Backend = "auto",
) -> torch.Tensor:
    """aₜ = δₜ + γ κₜ aₜ₊₁ inside an episode; aₜ = δₜ where the episode ends at t (terminated or
    truncated) or at the rollout's last step — the recursion under every off-policy target here.

    Args:
      deltas: ``[T, *B]`` δₜ (already weighted, e.g. min(ρ̄, ρₜ)·TD error for V-trace).
      traces: ``[T, *B]`` κₜ, the trace coefficient linking step t to step t+1 (V-trace: cₜ;
        Retrace-type Q targets: cₜ₊₁).
      terminated, truncated: ``[T, *B]`` bool/0-1 episode ends after step t.
      gamma: discount γ in [0, 1].
      backend: ``"auto"``, ``"torch"``, ``"numba"`` or ``"reference"`` (see :mod:`pgmath.scan`).
    Returns:
      ``[T, *B]`` aₜ in ``deltas``' dtype.

    Checked by: the spec ``pgmath.specs.SPECS["trace_recursion"]`` (fast == plain loop, == the
    expansion Σₖ γᵏ⁻ᵗ Πⱼ κⱼ δₖ summed directly), run by ``tests/test_specs.py``.
    """
    term, trunc = validate_rollout(deltas, terminated=terminated, truncated=truncated)
    validate_float_tensor(traces, "traces")
    validate_same_shape("deltas", deltas, traces=traces)
    gamma = validate_unit_interval(gamma, "gamma")
    if backend == "reference":
        return trace_recursion_reference(deltas, traces, terminated, truncated, gamma=gamma)
    cd = compute_dtype(deltas.dtype)
    goes_on = (~episode_stops(term, trunc)).to(cd)
    out = discounted_cumsum(deltas.to(cd), gamma * traces.to(cd) * goes_on, backend=backend)
    return out.to(deltas.dtype)


def trace_recursion_reference(
    deltas: torch.Tensor,
    traces: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
) -> torch.Tensor:
    """:func:`trace_recursion` by a plain reverse loop over t (the reference)."""
    term, trunc = validate_rollout(deltas, terminated=terminated, truncated=truncated)
    validate_float_tensor(traces, "traces")
    validate_same_shape("deltas", deltas, traces=traces)
    gamma = validate_unit_interval(gamma, "gamma")
    T = deltas.shape[0]
    out = torch.empty_like(deltas)
    a_next = torch.zeros_like(deltas[0])
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        ends = term[t] | trunc[t] | (t == T - 1)
        a = deltas[t] + torch.where(ends, torch.zeros_like(a_next), gamma * traces[t] * a_next)
        out[t] = a
        a_next = a
    return out


# ---------------------------------------------------------------------------------------------
# V-trace


def vtrace(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    pg_rho_bar: float | None = None,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace value targets vₜ and policy-gradient advantages (Espeholt et al. 2018).

        ρₜ = π(aₜ|sₜ)/μ(aₜ|sₜ),   ρ̃ₜ = min(ρ̄, ρₜ),   cₜ = λ·min(c̄, ρₜ)
        δₜ = ρ̃ₜ (rₜ + γ(1 − termₜ) V(sₜ₊₁) − V(sₜ))
        vₜ − V(sₜ) = δₜ + γ cₜ (vₜ₊₁ − V(sₜ₊₁))    inside an episode; = δₜ where it ends at t
        Âₜ = min(ρ̄_pg, ρₜ) (rₜ + γ(1 − termₜ) v⁺ₜ − V(sₜ)),
             v⁺ₜ = vₜ₊₁ inside an episode, V(sₜ₊₁) = next_values[t] where it ends at t

    Source: Espeholt et al. (2018), "IMPALA", eq. (1), Remark 1 (λ), section 4.2 (the advantage
    uses vₜ₊₁). With ρ ≡ 1, ρ̄ = c̄ = 1: vₜ = the λ-return, Âₜ = the one-step advantage with vₜ₊₁
    (λ = 1: Âₜ = GAE(γ, 1)).

    Args:
      log_rhos: ``[T, *B]`` log π(aₜ|sₜ) − log μ(aₜ|sₜ) (−inf allowed; NaN/+inf refused).
      rewards: ``[T, *B]`` rₜ.
      values: ``[T, *B]`` V(sₜ).
      next_values: ``[T, *B]`` V(sₜ₊₁) (the real final observation's value at a truncation).
      terminated: ``[T, *B]`` bool/0-1: sₜ₊₁ is terminal.
      truncated: ``[T, *B]`` bool/0-1: the episode was cut after step t (bootstrap from
        ``next_values[t]``; the trace stops).
      gamma: discount γ in [0, 1].
      lam: λ in [0, 1] (multiplies the trace cₜ).
      rho_bar: ρ̄ ≥ 0, the clip of the TD errors' weight (the fixed point's policy).
      c_bar: c̄ ≥ 0, the clip of the trace (the contraction speed).
      pg_rho_bar: the clip of the policy-gradient weight (default ρ̄).
      backend: ``"auto"``, ``"torch"``, ``"numba"`` or ``"reference"`` (:func:`vtrace_reference`).
    Returns:
      ``(value_targets, pg_advantages)``, both ``[T, *B]`` in ``rewards``' dtype.

    Checked by: the spec ``pgmath.specs.SPECS["vtrace"]`` (``pgmath/specs/offpolicy.py``: fast ==
    reference loop for every backend; on-policy == λ-returns and GAE; λ = 0 → one-step targets;
    == the expansion summed directly; every catalogued wrong variant rejected), run by
    ``tests/test_specs.py``; ``tests/test_offpolicy.py``; proof ``proofs/vtrace.py``.
    """
    lr, term, trunc, gamma, lam, rho_bar, c_bar, pg_rho_bar = _vtrace_args(
        log_rhos, rewards, values, next_values, terminated, truncated, gamma, lam, rho_bar, c_bar,
        pg_rho_bar)
    if backend == "reference":
        return vtrace_reference(log_rhos, rewards, values, next_values, terminated, truncated,
                                gamma=gamma, lam=lam, rho_bar=rho_bar, c_bar=c_bar,
                                pg_rho_bar=pg_rho_bar)
    cd = compute_dtype(rewards.dtype)  # (the inputs were checked finite by _vtrace_args)
    r, v, nv = rewards.to(cd), values.to(cd), next_values.to(cd)
    rho = lr.to(cd).exp()
    not_term = (~term).to(cd)
    td = r + gamma * not_term * nv - v
    a = trace_recursion(rho.clamp(max=rho_bar) * td, lam * rho.clamp(max=c_bar), term, trunc,
                        gamma=gamma, backend=backend)
    vs = v + a
    stop = episode_stops(term, trunc)
    vs_next = torch.where(stop, nv, torch.cat([vs[1:], vs[-1:]]))
    pg = rho.clamp(max=pg_rho_bar) * (r + gamma * not_term * vs_next - v)
    return vs.to(rewards.dtype), pg.to(rewards.dtype)


def vtrace_reference(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    pg_rho_bar: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`vtrace` by a plain reverse loop over t (the reference)."""
    lr, term, trunc, gamma, lam, rho_bar, c_bar, pg_rho_bar = _vtrace_args(
        log_rhos, rewards, values, next_values, terminated, truncated, gamma, lam, rho_bar, c_bar,
        pg_rho_bar)
    T = rewards.shape[0]
    vs = torch.empty_like(rewards)
    pg = torch.empty_like(rewards)
    vs_after = torch.zeros_like(rewards[0])  # vₜ₊₁ of the previous iteration
    a_next = torch.zeros_like(rewards[0])  # vₜ₊₁ − V(sₜ₊₁)
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        rho = lr[t].exp()
        not_term = (~term[t]).to(rewards.dtype)
        goes_on = ~(term[t] | trunc[t]) & (t < T - 1)
        delta = torch.clamp(rho, max=rho_bar) * (rewards[t] + gamma * not_term * next_values[t] - values[t])
        c = lam * torch.clamp(rho, max=c_bar)
        a = delta + torch.where(goes_on, gamma * c * a_next, torch.zeros_like(a_next))
        v_plus = torch.where(goes_on, vs_after, next_values[t])
        pg[t] = torch.clamp(rho, max=pg_rho_bar) * (rewards[t] + gamma * not_term * v_plus - values[t])
        vs[t] = values[t] + a
        vs_after, a_next = vs[t], a
    return vs, pg


# ---------------------------------------------------------------------------------------------
# Retrace-type Q targets: Retrace(λ), Tree-backup(λ), Q(λ)


def _q_targets(rewards, q_values, next_values, term, trunc, traces, gamma, backend):
    """Q(sₜ,aₜ) + aₜ with aₜ = δₜ + γ c_{t+1} aₜ₊₁ (c given per step, aligned here); the inputs
    were checked finite by ``_rollout``."""
    cd = compute_dtype(rewards.dtype)
    r, q, nv = rewards.to(cd), q_values.to(cd), next_values.to(cd)
    delta = r + gamma * (~term).to(cd) * nv - q
    kappa = torch.cat([traces[1:].to(cd), torch.zeros_like(traces[:1], dtype=cd)])  # κₜ = cₜ₊₁
    a = trace_recursion(delta, kappa, term, trunc, gamma=gamma, backend=backend)
    return (q + a).to(rewards.dtype)


def _q_targets_reference(rewards, q_values, next_values, term, trunc, traces, gamma):
    """Gₜ = rₜ + γ(1 − termₜ)[E_π Q(sₜ₊₁,·) + cₜ₊₁ (Gₜ₊₁ − Q(sₜ₊₁, aₜ₊₁))] by a plain loop."""
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        not_term = (~term[t]).to(rewards.dtype)
        follow = next_values[t]
        if t < T - 1:
            goes_on = ~(term[t] | trunc[t])
            corr = traces[t + 1] * (out[t + 1] - q_values[t + 1])
            follow = follow + torch.where(goes_on, corr, torch.zeros_like(corr))
        out[t] = rewards[t] + gamma * not_term * follow
    return out


def retrace(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Retrace(λ) targets for Q(sₜ, aₜ) (Munos, Stepleton, Harutyunyan & Bellemare 2016).

        cₛ = λ·min(1, ρₛ)
        Gₜ = rₜ + γ(1 − termₜ)[E_π Q(sₜ₊₁,·) + cₜ₊₁ (Gₜ₊₁ − Q(sₜ₊₁, aₜ₊₁))]   inside an episode
        Gₜ = rₜ + γ(1 − termₜ) E_π Q(sₜ₊₁,·)                                where it ends at t

    equivalently Gₜ − Q(sₜ,aₜ) = Σₖ γᵏ⁻ᵗ (Πⱼ₌ₜ₊₁ᵏ cⱼ) δₖ with δₖ = rₖ + γ E_π Q(sₖ₊₁,·) − Q(sₖ,aₖ).
    Note the trace after step t is cₜ₊₁ (the ratio of the *next* action); ρₜ itself never enters
    Gₜ (Q(sₜ, aₜ) is conditioned on aₜ). Source: Munos et al. (2016), eq. (3) and Table 1.

    Args:
      log_rhos: ``[T, *B]`` log π(aₜ|sₜ) − log μ(aₜ|sₜ) (−inf allowed; NaN/+inf refused).
      rewards: ``[T, *B]`` rₜ.
      q_values: ``[T, *B]`` Q(sₜ, aₜ) of the taken actions.
      next_values: ``[T, *B]`` E_{a∼π} Q(sₜ₊₁, a) (at a truncation: of the real final observation).
      terminated, truncated: ``[T, *B]`` bool/0-1 as in :func:`vtrace`.
      gamma: discount γ in [0, 1].
      lam: λ in [0, 1].
      backend: ``"auto"``, ``"torch"``, ``"numba"`` or ``"reference"`` (:func:`retrace_reference`).
    Returns:
      ``[T, *B]`` Gₜ, the targets of Q(sₜ, aₜ), in ``rewards``' dtype.

    Checked by: the spec ``pgmath.specs.SPECS["retrace"]`` (``pgmath/specs/offpolicy.py``: fast ==
    reference loop; π = μ → Q(λ); λ = 0 → one-step targets; every catalogued wrong variant
    rejected), run by ``tests/test_specs.py``; ``tests/test_offpolicy.py``.
    """
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    lr = validate_log_ratios(log_rhos, "log_rhos", rewards)
    if backend == "reference":
        return retrace_reference(log_rhos, rewards, q_values, next_values, terminated, truncated,
                                 gamma=gamma, lam=lam)
    c = lam * lr.to(compute_dtype(rewards.dtype)).exp().clamp(max=1.0)
    return _q_targets(rewards, q_values, next_values, term, trunc, c, gamma, backend)


def retrace_reference(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
) -> torch.Tensor:
    """:func:`retrace` by a plain reverse loop over t (the reference)."""
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    lr = validate_log_ratios(log_rhos, "log_rhos", rewards)
    c = lam * torch.clamp(lr.exp(), max=1.0)
    return _q_targets_reference(rewards, q_values, next_values, term, trunc, c, gamma)


def tree_backup(
    target_log_probs: torch.Tensor,
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Tree-backup(λ) targets for Q(sₜ, aₜ) (Precup, Sutton & Singh 2000): the recursion of
    :func:`retrace` with the trace cₛ = λ·π(aₛ|sₛ), which needs no behaviour probabilities.

    Args:
      target_log_probs: ``[T, *B]`` log π(aₜ|sₜ) (−inf allowed; NaN/+inf refused).
      rewards, q_values, next_values, terminated, truncated, gamma, lam, backend: as
        :func:`retrace`.
    Returns:
      ``[T, *B]`` the targets of Q(sₜ, aₜ).

    Checked by: the spec ``pgmath.specs.SPECS["tree_backup"]`` (fast == reference loop; == the
    general recursion; λ = 0 → one-step targets), run by ``tests/test_specs.py``.
    """
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    lp = _validate_target_log_probs(target_log_probs, rewards)
    if backend == "reference":
        return tree_backup_reference(target_log_probs, rewards, q_values, next_values, terminated,
                                     truncated, gamma=gamma, lam=lam)
    c = lam * lp.to(compute_dtype(rewards.dtype)).exp()
    return _q_targets(rewards, q_values, next_values, term, trunc, c, gamma, backend)


def tree_backup_reference(
    target_log_probs: torch.Tensor,
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float = 1.0,
) -> torch.Tensor:
    """:func:`tree_backup` by a plain reverse loop over t (the reference)."""
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    lp = _validate_target_log_probs(target_log_probs, rewards)
    return _q_targets_reference(rewards, q_values, next_values, term, trunc, lam * lp.exp(), gamma)


def q_lambda(
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Q(λ) targets with off-policy corrections (Harutyunyan, Bellemare, Stepleton & Munos 2016):
    the recursion of :func:`retrace` with the trace cₛ = λ (no importance weights; converges to
    Q^π only when π and μ are close). With π = μ it equals :func:`retrace` (then min(1, ρ) = 1).

    Args: as :func:`retrace`, without ``log_rhos``.
    Returns:
      ``[T, *B]`` the targets of Q(sₜ, aₜ).

    Checked by: the spec ``pgmath.specs.SPECS["q_lambda"]`` (fast == reference loop; == Σ(γλ)ᵏ δ
    summed directly), run by ``tests/test_specs.py``.
    """
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    if backend == "reference":
        return q_lambda_reference(rewards, q_values, next_values, terminated, truncated,
                                  gamma=gamma, lam=lam)
    return _q_targets(rewards, q_values, next_values, term, trunc,
                      torch.full_like(rewards, lam), gamma, backend)


def q_lambda_reference(
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """:func:`q_lambda` by a plain reverse loop over t (the reference)."""
    term, trunc, gamma, lam = _rollout(rewards, q_values, next_values, terminated, truncated, gamma,
                                       lam, "q_values")
    return _q_targets_reference(rewards, q_values, next_values, term, trunc,
                                torch.full_like(rewards, lam), gamma)


# ---------------------------------------------------------------------------------------------
# per-decision importance sampling


def per_decision_is_returns(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Per-decision importance-sampling returns (Precup, Sutton & Singh 2000):

        Gₜ = ρₜ (rₜ + γ Gₜ₊₁)                   inside an episode
        Gₜ = ρₜ (rₜ + γ(1 − termₜ) V(sₜ₊₁))      where it ends at t (truncated or t = T−1)

    so E_μ[Gₜ | sₜ] = V^π(sₜ) when V is V^π (each reward weighted by the ratios of the actions
    before it only). Unclipped: the variance grows with Πρ.

    Args:
      log_rhos: ``[T, *B]`` log π(aₜ|sₜ) − log μ(aₜ|sₜ) (−inf allowed; NaN/+inf refused).
      rewards: ``[T, *B]`` rₜ.
      next_values: ``[T, *B]`` V(sₜ₊₁), used only where the episode is cut.
      terminated, truncated: ``[T, *B]`` bool/0-1.
      gamma: discount γ in [0, 1].
      backend: ``"auto"``, ``"torch"``, ``"numba"`` or ``"reference"``.
    Returns:
      ``[T, *B]`` Gₜ.

    Checked by: the spec ``pgmath.specs.SPECS["per_decision_is_returns"]`` (fast == reference
    loop; ρ ≡ 1 → discounted returns), run by ``tests/test_specs.py``.
    """
    lr, term, trunc, gamma = _pdis_args(log_rhos, rewards, next_values, terminated, truncated, gamma)
    if backend == "reference":
        return per_decision_is_returns_reference(log_rhos, rewards, next_values, terminated,
                                                 truncated, gamma=gamma)
    cd = compute_dtype(rewards.dtype)
    rho = lr.to(cd).exp()
    stop = episode_stops(term, trunc)
    boot = (stop & ~term).to(cd) * next_values.to(cd)
    a = trace_recursion(rho * (rewards.to(cd) + gamma * boot), rho, term, trunc, gamma=gamma,
                        backend=backend)
    return a.to(rewards.dtype)


def per_decision_is_returns_reference(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    *,
    gamma: float,
) -> torch.Tensor:
    """:func:`per_decision_is_returns` by a plain reverse loop over t (the reference)."""
    lr, term, trunc, gamma = _pdis_args(log_rhos, rewards, next_values, terminated, truncated, gamma)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    g_next = torch.zeros_like(rewards[0])
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        cut = trunc[t] | (t == T - 1)
        follow = torch.where(cut, next_values[t], g_next)
        g = torch.where(term[t], rewards[t], rewards[t] + gamma * follow)
        out[t] = lr[t].exp() * g
        g_next = out[t]
    return out
