"""The exact expectation of every estimator of :mod:`pgmath.estimators.policy_gradient`.

Every rule there has the form ĝ = Σₜ cₜ ∇θ log πθ(aₜ|sₜ) Ψₜ with cₜ = γᵗ (or 1 when the
discount weight is dropped) and a weight Ψₜ whose conditional mean given (sₜ, aₜ) is a fixed
table f(s, a). Then (Σₐ ∇π(a|s) = 0 removes any function of s alone)::

    E[ĝ] = Σₜ cₜ Σₛ Pr(sₜ = s) Σₐ π(a|s) ∇log π(a|s) f(s, a) = Σₛ occ(s) Σₐ ∇θ πθ(a|s) f(s, a)

with occ = d (discounted occupancy, cₜ = γᵗ) or d₁ (undiscounted, cₜ = 1). The tables f::

    reinforce, reward_to_go, baseline, actor_critic     f = Q                     → ∇J
    td, gae (exact V)                                    f = A                     → ∇J
    gae_no_discount_weight                               f = A, occ = d₁           → ≠ ∇J if γ < 1
    action_dependent_baseline (b = R)                    f = Q − R
    off_by_one_return (Gₜ₊₁)                             f(s, a) = Σₛ' P(s'|s, a) V(s')
    gae_wrong_recursion (λ on δₜ)                        f = λ (A + Q_e)
    TD / GAE with a critic V̂ = V + e                    f = A + Q_e(λ)

For the imperfect critic, δ̂ₜ = δₜ + εₜ with εₜ = γ (1 − termₜ) e(sₜ₊₁) − e(sₜ), and
Q_e(s, a) = E[Σₗ (γλ)ˡ εₜ₊ₗ | sₜ = s, aₜ = a] solves a Bellman equation with "reward"
ε(s, a) = γ Σₛ' P(s'|s, a) e(s') − e(s) (e = 0 on terminal states) and discount γλ::

    Q_e(s, a) = ε(s, a) + γλ Σₛ' P(s'|s, a) W(s'),     W = (I − γλ P_π)⁻¹ ε_π

so the bias of GAE(λ) with V̂ is  b(λ) = Σₛ d(s) Σₐ ∇π(a|s) Q_e(s, a). At λ = 1, Q_e(s, a) =
−e(s) + (terms that telescope) = −e(s) (for terminating episodes / γ < 1): a pure state
baseline, so b(1) = 0; at λ = 0, Q_e = ε and b(0) = γ Σₛ d(s) Σₐ ∇π(a|s) (P e)(s, a).

All of these are computed by linear solves on the exact MDP (the auxiliary evaluation is a
:class:`pgmath.mdp.TabularMDP` with rewards ε and discount γλ); ∇θ π by autograd of the
surrogate Σₛ occ(s) Σₐ πθ(a|s) f(s, a) with occ and f held fixed (the same construction as the
policy-gradient theorem in ``exact_policy_gradient(method="theorem")``).

Sources: Sutton, McAllester, Singh & Mansour (1999); Schulman et al. (2015), §3–4 (GAE is
γ-just for any λ only with the true V); Nota & Thomas (2020) for d₁ in place of d.

Checked by: tests/test_estimators_expected.py (unbiased rules == ``exact_policy_gradient``;
b(1) = 0; b(0) closed form; the no-discount-weight mean at γ = 1 == ∇J) and
tests/test_estimators_verify.py (the suite rows: sample means match these predictions). Docs:
docs/estimators/gae_bias.md and the pages of the biased estimators.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pgmath.estimators.policy_gradient import lookup_estimator, policy_table, resolve_options
from pgmath.mdp import TabularMDP
from pgmath.validation import validate_float_tensor, validate_unit_interval

__all__ = [
    "expected_gradient",
    "gae_value_error_bias",
    "score_expectation",
    "undiscounted_occupancy",
    "value_error_action_values",
]

PolicyFn = Callable[[torch.Tensor], torch.Tensor]


def _pi_of(mdp: TabularMDP, params: torch.Tensor, policy_fn: PolicyFn | None) -> torch.Tensor:
    return torch.softmax(params, -1) if policy_fn is None else policy_fn(params)


def score_expectation(
    mdp: TabularMDP,
    params: torch.Tensor,
    occupancy: torch.Tensor,
    f: torch.Tensor,
    *,
    policy_fn: PolicyFn | None = None,
) -> torch.Tensor:
    """Σₛ occ(s) Σₐ ∇θ πθ(a|s) f(s, a), shaped like ``params`` (detached).

    Args:
      mdp: the MDP (for the dtype/device).
      params: ``[S, A]`` logits, or the argument of ``policy_fn``.
      occupancy: ``[S]`` occ(s), held fixed.
      f: ``[S, A]`` f(s, a), held fixed.
      policy_fn: optional ``params -> π [S, A]``.
    """
    validate_float_tensor(params, "params")
    theta = params.detach().to(device=mdp.device, dtype=mdp.dtype).clone().requires_grad_(True)
    with torch.enable_grad():
        pi = _pi_of(mdp, theta, policy_fn)
        surrogate = (occupancy.detach()[:, None] * pi * f.detach()).sum()
        (g,) = torch.autograd.grad(surrogate, theta, allow_unused=True)
    return torch.zeros_like(theta).detach() if g is None else g.detach()


def undiscounted_occupancy(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """d₁(s) = Σₜ Pr(sₜ = s), the expected number of visits (needs a terminating policy)."""
    return mdp.with_gamma(1.0).discounted_occupancy(pi)


def value_error_action_values(
    mdp: TabularMDP, pi: torch.Tensor, values: torch.Tensor, lam: float
) -> torch.Tensor:
    """Q_e(s, a) = E[Σₗ (γλ)ˡ εₜ₊ₗ | sₜ = s, aₜ = a] for the critic error e = values − V^π, ``[S, A]``.

    Evaluated as the action values of the same dynamics with reward
    ε(s, a) = γ Σₛ' P(s'|s, a) e(s') − e(s) and discount γλ (0 on terminal states).
    """
    lam = validate_unit_interval(lam, "lam")
    pi = mdp.validate_policy(pi).detach()
    validate_float_tensor(values, "values")
    if tuple(values.shape) != (mdp.num_states,):
        raise ValueError(f"values must have shape [S] = ({mdp.num_states},), got {tuple(values.shape)}")
    live = (~mdp.terminal).to(mdp.dtype)
    e = (values.to(device=mdp.device, dtype=mdp.dtype) - mdp.state_values(pi)) * live
    eps = mdp.gamma * torch.einsum("sat,t->sa", mdp.P, e) - e[:, None]
    eps = eps * live[:, None]
    aux = TabularMDP(mdp.P, eps, mdp.gamma * lam, mdp.mu0, mdp.terminal, dtype=mdp.dtype, device=mdp.device)
    return aux.action_values(pi)


def gae_value_error_bias(
    mdp: TabularMDP,
    logits: torch.Tensor,
    values: torch.Tensor,
    lam: float,
    *,
    policy_fn: PolicyFn | None = None,
    discount_weight: bool = True,
) -> torch.Tensor:
    """b(λ) = E[ĝ_GAE(λ; V̂)] − E[ĝ_GAE(λ; V)] = Σₛ occ(s) Σₐ ∇π(a|s) Q_e(s, a), exactly.

    Args:
      mdp: the MDP; logits: ``[S, A]`` (or ``policy_fn``'s params); values: ``[S]`` critic V̂.
      lam: λ ∈ [0, 1].
      discount_weight: occ = d (γᵗ weight, default) or d₁ (the no-discount-weight variant).
    Returns:
      shaped like ``logits``.
    """
    pi = policy_table(mdp, logits.detach().to(device=mdp.device, dtype=mdp.dtype), policy_fn).detach()
    Qe = value_error_action_values(mdp, pi, values, lam)
    occ = mdp.discounted_occupancy(pi) if discount_weight else undiscounted_occupancy(mdp, pi)
    return score_expectation(mdp, logits, occ, Qe, policy_fn=policy_fn)


def expected_gradient(
    mdp: TabularMDP,
    logits: torch.Tensor,
    estimator: str,
    *,
    policy_fn: PolicyFn | None = None,
    **options: object,
) -> torch.Tensor:
    """E[ĝ] of ``estimator`` (same options as :func:`pgmath.estimators.estimate_policy_gradient`).

    Exact (linear solves), for untruncated episodes. Equals ``mdp.exact_policy_gradient`` for the
    unbiased rules; for the biased ones it is the value their sample mean converges to.
    """
    spec = lookup_estimator(estimator)
    validate_float_tensor(logits, "logits")
    params = logits.detach().to(device=mdp.device, dtype=mdp.dtype)
    pi = policy_table(mdp, params, policy_fn).detach()
    opts = resolve_options(mdp, pi, estimator, options)
    V = mdp.state_values(pi)
    Q = mdp.action_values(pi)
    A = Q - V[:, None]
    d = mdp.discounted_occupancy(pi)
    name = spec.name
    lam = float(opts.get("lam", {"td": 0.0, "gae_wrong_recursion": 0.9, "gae_perturbed_values": 0.5}.get(name, 0.95)))
    values = opts.get("values")

    def with_critic(base: torch.Tensor) -> torch.Tensor:
        if values is None or name in ("baseline",):
            return base
        return base + value_error_action_values(mdp, pi, values, lam)

    occ = d
    if name in ("reinforce", "reward_to_go", "baseline"):
        f = Q
    elif name == "actor_critic":
        f = Q if opts.get("critic", "advantage") == "q" else A
    elif name in ("td", "gae", "gae_perturbed_values"):
        f = with_critic(A)
    elif name == "gae_no_discount_weight":
        f, occ = with_critic(A), undiscounted_occupancy(mdp, pi)
    elif name == "gae_wrong_recursion":
        f = lam * with_critic(A)
    elif name == "action_dependent_baseline":
        f = Q - mdp.R
    elif name == "off_by_one_return":
        f = torch.einsum("sat,t->sa", mdp.P, V)
    else:  # pragma: no cover - every registered name is handled above
        raise ValueError(f"no expectation known for estimator {name!r}")
    return score_expectation(mdp, params, occ, f, policy_fn=policy_fn)
