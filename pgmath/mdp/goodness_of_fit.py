"""Does a sampler draw from the right MDP? A chi-square test against the exact occupancy.

One state-action pair per episode, taken at an independent geometric time τ with
Pr(τ = t) = (1 - γ) γᵗ, is an exact draw from the normalized discounted occupancy::

    Pr(s_τ = s, a_τ = a, τ < L) = (1 - γ) Σ_{t < T} γᵗ Pr(sₜ = s, aₜ = a, t < L) = (1 - γ) d_T(s, a)

where L is the episode length and T the sampler's step cap; the remaining mass
1 - (1 - γ) Σ d_T is the category "τ past the end of the episode". Counting the triple
(s_τ, a_τ, s_τ₊₁) instead, the expected probability is (1 - γ) d_T(s, a) P(s'|s, a). The N episodes are
independent, so the N categories are one multinomial draw and Pearson's statistic
Σ (O - E)² / E is χ² with k - 1 degrees of freedom (k categories after pooling those with
expected count below ``min_expected``; Cochran's rule). d_T is the occupancy truncated at the
cap, computed by :func:`truncated_occupancy` (a forward loop), which equals
``mdp.discounted_occupancy(pi)`` up to γ^T.

The γ of the test is a free choice (the dynamics do not depend on it): any γ ∈ (0, 1) works,
also for an episodic MDP with γ = 1.

Source: Pearson (1900); Cochran, "Some methods for strengthening the common χ² tests"
(Biometrics 1954). Checked by: tests/test_mdp_sampler.py (false-alarm rate stated and fixed
seeds; a deliberately wrong sampler is rejected; truncated_occupancy → discounted_occupancy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pgmath.mdp.sampler import Episodes
from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import validate_unit_interval

__all__ = ["OccupancyTest", "occupancy_chi_square", "truncated_occupancy"]


@dataclass(frozen=True)
class OccupancyTest:
    statistic: float  # Pearson's Σ (O - E)² / E
    dof: int  # degrees of freedom, k - 1
    p_value: float  # Pr(χ²_dof >= statistic)
    observed: torch.Tensor  # [k] counts after pooling
    expected: torch.Tensor  # [k] expected counts after pooling


def truncated_occupancy(mdp: TabularMDP, pi: torch.Tensor, max_steps: int, *, gamma: float | None = None) -> torch.Tensor:
    """d_T(s, a) = Σ_{t<T} γᵗ Pr(sₜ = s, aₜ = a, episode not ended before t), ``[S, A]``.

    A forward loop over t (state distribution μₜ₊₁ = μₜ P_π on non-terminal states) — the
    reference against which the linear solve of ``discounted_occupancy`` is checked as T → ∞.

    Args:
      mdp: the MDP. pi: ``[S, A]`` policy. max_steps: T >= 1.
      gamma: discount of the occupancy (default ``mdp.gamma``).
    """
    g = mdp.gamma if gamma is None else validate_unit_interval(gamma, "gamma")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    pi = mdp.validate_policy(pi).detach()
    live = (~mdp.terminal).to(mdp.dtype)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.P) * live[None, :]  # drop moves into terminal states
    mu = mdp.mu0 * live
    d = torch.zeros(mdp.num_states, dtype=mdp.dtype, device=mdp.device)
    w = 1.0
    # forward in time t = 0 … T-1
    for _ in range(max_steps):
        d = d + w * mu
        mu = mu @ P_pi
        w *= g
        if w == 0.0 or float(mu.sum()) * w < 1e-300:
            break
    return d[:, None] * pi


def occupancy_chi_square(
    episodes: Episodes,
    mdp: TabularMDP,
    pi: torch.Tensor,
    *,
    max_steps: int,
    gamma: float,
    generator: torch.Generator,
    by: str = "transition",
    min_expected: float = 5.0,
) -> OccupancyTest:
    """Pearson χ² test of the step at a geometric time against (1 - γ) d_T.

    ``by="transition"`` counts triples (s_τ, a_τ, s_τ₊₁), expected (1 - γ) d_T(s, a) P(s'|s, a)
    (the sharper test: it also sees wrong dynamics); ``by="state_action"`` counts pairs
    (s_τ, a_τ), expected (1 - γ) d_T(s, a).

    Args:
      episodes: output of a sampler (``[T, N]``), sampled with step cap ``max_steps``.
      mdp, pi: the MDP and policy the episodes claim to come from.
      max_steps: the step cap T used by the sampler.
      gamma: γ ∈ (0, 1) of the geometric times (independent of ``mdp.gamma``).
      generator: draws the geometric times (on the episodes' device).
      by: "transition" or "state_action" (the categories).
      min_expected: categories with a smaller expected count are pooled.

    Returns:
      :class:`OccupancyTest`; reject at level α when ``p_value < α``. Observing a category of
      zero expected probability gives p = 0.
    """
    from scipy.stats import chi2

    if by not in ("transition", "state_action"):
        raise ValueError(f"by must be 'transition' or 'state_action', got {by!r}")
    g = validate_unit_interval(gamma, "gamma")
    if not 0.0 < g < 1.0:
        raise ValueError(f"gamma must lie strictly inside (0, 1) for geometric times, got {g}")
    S, A = mdp.num_states, mdp.num_actions
    N = episodes.num_episodes
    dev = episodes.states.device
    u = torch.rand(N, generator=generator, device=dev, dtype=torch.float64)
    tau = torch.floor(torch.log1p(-u) / torch.log(torch.tensor(g, dtype=torch.float64))).long()
    inside = tau < episodes.lengths
    t_idx = torch.clamp(tau, max=episodes.num_steps - 1)[None]
    s = episodes.states.gather(0, t_idx)[0]
    a = episodes.actions.gather(0, t_idx)[0]
    p = (1 - g) * truncated_occupancy(mdp, pi, max_steps, gamma=g).to(torch.float64).cpu()
    if by == "transition":
        s2 = episodes.next_states.gather(0, t_idx)[0]
        cat = (s * A + a) * S + s2
        p = (p[:, :, None] * mdp.P.to(torch.float64).cpu()).reshape(-1)
    else:
        cat = s * A + a
        p = p.reshape(-1)
    k_in = p.numel()
    cat = torch.where(inside, cat, torch.full_like(cat, k_in))
    observed = torch.bincount(cat, minlength=k_in + 1).to(torch.float64).cpu()
    p = torch.cat([p, (1 - p.sum()).clamp_min(0.0)[None]])
    expected = N * p
    zero = p <= 1e-15
    if bool((observed[zero] > 0).any()):
        return OccupancyTest(float("inf"), 0, 0.0, observed, expected)
    obs, exp = observed[~zero], expected[~zero]
    small = exp < min_expected
    if bool(small.any()):
        pooled_o, pooled_e = obs[small].sum(), exp[small].sum()
        obs, exp = obs[~small], exp[~small]
        if pooled_e >= min_expected or obs.numel() == 0:
            obs, exp = torch.cat([obs, pooled_o[None]]), torch.cat([exp, pooled_e[None]])
        else:  # merge the pool into the smallest remaining category
            j = int(exp.argmin())
            obs[j] += pooled_o
            exp[j] += pooled_e
    k = obs.numel()
    if k < 2:
        raise ValueError("too few categories for a chi-square test; sample more episodes")
    stat = float(((obs - exp) ** 2 / exp).sum())
    return OccupancyTest(stat, k - 1, float(chi2.sf(stat, k - 1)), obs, exp)
