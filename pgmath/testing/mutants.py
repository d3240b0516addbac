"""A catalogue of buggy implementations seen in the field, each one rejected by a check.

Every :class:`Mutant` is a deliberately wrong GAE, return, PPO loss, KL estimator or group
advantage, written in the calling convention of the code where the bug lives (so the sb3, rlax
and torchrl mutants exercise the adapters of :mod:`pgmath.testing.conventions`). The test suite
runs each through its check and requires a rejection (100 %), and runs the references through the
same checks and requires a pass, so the checks both catch bugs and accept correct code.

``MUTANTS`` is the catalogue; ``docs/testing/mutants.md`` lists it with where each bug was seen and
which check catches it. :func:`diagnose` tells a failing check which known bug a user's output
reproduces ("Your output reproduces the known bug: gae_no_truncation_bootstrap …").

Checked by: ``tests/test_testing_mutants.py`` (every mutant rejected, reference accepted, the docs
table in sync with the catalogue, diagnose names the mutant on its own output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgmath.scan import discounted_cumsum_reference

__all__ = ["MUTANTS", "Mutant", "by_name", "diagnose"]


@dataclass(frozen=True)
class Mutant:
    """A buggy implementation and what it takes to reject it."""

    name: str
    bug: str  # what is wrong, in one line
    seen_in: str  # where the bug was seen in the field
    check: str  # "gae", "returns", "ppo_loss", "kl", "group"
    convention: str  # the convention ``fn`` is written in
    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of the check

    @property
    def check_name(self) -> str:
        return {
            "gae": "check_gae", "returns": "check_returns", "ppo_loss": "check_ppo_loss",
            "kl": "check_kl_estimator", "group": "check_group_advantages",
        }[self.check]

    def run_check(self, **overrides: Any):
        """Run the check that should reject this mutant (raises ``AssertionError`` when it does)."""
        from pgmath.testing import checks

        kw = dict(self.options)
        if self.check in ("gae", "returns", "ppo_loss"):
            kw["convention"] = self.convention
        kw.update(overrides)
        return getattr(checks, self.check_name)(self.fn, **kw)


# ---------------------------------------------------------------------------------------------
# helpers shared by the mutants (torch, time-major [T, *B])


def _f(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """0/1 flags as floats of ``like``'s dtype."""
    return x.to(torch.bool).to(like.dtype)


def _reverse_scan(delta: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
    """Aₜ = δₜ + carryₜ Aₜ₊₁ with A_T = 0, backward in time (pgmath's reference scan)."""
    return discounted_cumsum_reference(delta, carry)


def _last_step(x: torch.Tensor) -> torch.Tensor:
    m = torch.zeros_like(x, dtype=torch.bool)
    m[-1] = True
    return m


# ---------------------------------------------------------------------------------------------
# GAE, pgmath convention: fn(rewards, values, next_values, terminated, truncated, *, gamma, lam)


def gae_no_truncation_bootstrap(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """Truncation treated as termination: done = terminated | truncated kills the bootstrap."""
    done = _f(terminated, rewards).bool() | _f(truncated, rewards).bool()
    nd = (~done).to(rewards.dtype)
    delta = rewards + gamma * nd * next_values - values
    return _reverse_scan(delta, gamma * lam * nd)


def gae_bootstrap_through_termination(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """δₜ always bootstraps (the terminal mask is missing from δ); only the trace is cut."""
    done = _f(terminated, rewards).bool() | _f(truncated, rewards).bool()
    delta = rewards + gamma * next_values - values
    return _reverse_scan(delta, gamma * lam * (~done).to(rewards.dtype))


def gae_reset_observation_bootstrap(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """At a truncation the bootstrap uses values[t+1], the *reset* observation's value."""
    term = _f(terminated, rewards).bool()
    done = term | _f(truncated, rewards).bool()
    nv = torch.cat([values[1:], next_values[-1:]], 0)
    delta = rewards + gamma * (~term).to(rewards.dtype) * nv - values
    return _reverse_scan(delta, gamma * lam * (~done).to(rewards.dtype))


def gae_next_value_off_by_one(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """δₜ = rₜ + γ V(sₜ) − V(sₜ): the current state's value where the next one belongs."""
    term = _f(terminated, rewards).bool()
    done = term | _f(truncated, rewards).bool()
    delta = rewards + gamma * (~term).to(rewards.dtype) * values - values
    return _reverse_scan(delta, gamma * lam * (~done).to(rewards.dtype))


def _gae_masks(rewards, terminated, truncated):
    term = _f(terminated, rewards).bool()
    done = term | _f(truncated, rewards).bool()
    return term, done


def gae_lambda_on_delta(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """Âₜ = λ δₜ + γλ Âₜ₊₁: λ multiplies the TD error as well as the trace."""
    term, done = _gae_masks(rewards, terminated, truncated)
    delta = rewards + gamma * (~term).to(rewards.dtype) * next_values - values
    return _reverse_scan(lam * delta, gamma * lam * (~done).to(rewards.dtype))


def gae_trace_crosses_truncation(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """The trace is cut only at terminations, so a truncated episode absorbs the next one's Â."""
    term, _ = _gae_masks(rewards, terminated, truncated)
    nt = (~term).to(rewards.dtype)
    delta = rewards + gamma * nt * next_values - values
    return _reverse_scan(delta, gamma * lam * nt)


def gae_done_mask_wrong_step(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """The masks of step t are read from step t+1 (flags stored one slot late)."""
    term, done = _gae_masks(rewards, terminated, truncated)
    term_n = torch.cat([term[1:], term[-1:]], 0)
    done_n = torch.cat([done[1:], done[-1:]], 0)
    delta = rewards + gamma * (~term_n).to(rewards.dtype) * next_values - values
    return _reverse_scan(delta, gamma * lam * (~done_n).to(rewards.dtype))


def gae_trace_missing_gamma(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """Âₜ = δₜ + λ Âₜ₊₁: the trace decays by λ alone."""
    term, done = _gae_masks(rewards, terminated, truncated)
    delta = rewards + gamma * (~term).to(rewards.dtype) * next_values - values
    return _reverse_scan(delta, lam * (~done).to(rewards.dtype))


def gae_no_rollout_end_bootstrap(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """The end of the rollout is treated as an episode end without bootstrap (V(s_T) dropped)."""
    term, done = _gae_masks(rewards, terminated, truncated)
    term = term | _last_step(term)
    delta = rewards + gamma * (~term).to(rewards.dtype) * next_values - values
    return _reverse_scan(delta, gamma * lam * (~done).to(rewards.dtype))


def gae_returns_from_normalized_advantages(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """Correct advantages, but the value targets are built from the *normalised* advantages."""
    from pgmath.advantages import gae_reference

    adv = gae_reference(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
    if adv.numel() > 1:
        norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    else:
        norm = adv - adv.mean()
    return adv, norm + values


# ---------------------------------------------------------------------------------------------
# GAE, Stable-Baselines3 convention (NumPy [T, n_envs]):
#   fn(rewards, values, episode_starts, last_values, dones, *, gamma, lam)


def _sb3_loop(rewards, values, episode_starts, last_values, dones, gamma, lam, *,
              start_offset: int = 1, mask_last: bool = True, reset_trace: bool = True):
    T = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    last = np.zeros(rewards.shape[1:])
    # backward in time: step = T-1, …, 0
    for step in reversed(range(T)):
        if step == T - 1:
            nnt = 1.0 - np.asarray(dones, dtype=np.float64) if mask_last else np.ones_like(last)
            nv = last_values
        else:
            nnt = 1.0 - episode_starts[step + start_offset]
            nv = values[step + 1]
        delta = rewards[step] + gamma * nv * nnt - values[step]
        last = delta + gamma * lam * (nnt if reset_trace else 1.0) * last
        adv[step] = last
    return adv


def sb3_episode_starts_wrong_step(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """next_non_terminal = 1 − episode_starts[step] (should be [step + 1])."""
    return _sb3_loop(rewards, values, episode_starts, last_values, dones, gamma, lam, start_offset=0)


def sb3_last_step_ignores_dones(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """The last step always bootstraps from last_values, even when it ended the episode."""
    return _sb3_loop(rewards, values, episode_starts, last_values, dones, gamma, lam, mask_last=False)


def sb3_trace_not_reset(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """δ is masked but the trace γλ Âₜ₊₁ is not, so Â leaks across episode boundaries."""
    return _sb3_loop(rewards, values, episode_starts, last_values, dones, gamma, lam, reset_trace=False)


# ---------------------------------------------------------------------------------------------
# GAE, rlax convention (one sequence, NumPy): fn(r_t [T], discount_t [T], lambda_, values [T+1])


def _rlax_scan(delta, carry):
    out = np.zeros_like(delta, dtype=np.float64)
    a = 0.0
    # backward in time: t = T-1, …, 0
    for t in range(len(delta) - 1, -1, -1):
        a = delta[t] + carry[t] * a
        out[t] = a
    return out


def rlax_values_swapped(r_t, discount_t, lambda_, values):
    """v_tm1 and v_t swapped: δₜ = rₜ + γₜ V(sₜ) − V(sₜ₊₁)."""
    v_tm1, v_t = values[1:], values[:-1]
    delta = r_t + discount_t * v_t - v_tm1
    return _rlax_scan(delta, discount_t * lambda_)


def rlax_trace_missing_discount(r_t, discount_t, lambda_, values):
    """Âₜ = δₜ + λ Âₜ₊₁: the trace uses λ but not discount_t (no γ, no episode cut)."""
    delta = r_t + discount_t * values[1:] - values[:-1]
    return _rlax_scan(delta, np.full_like(delta, lambda_))


# ---------------------------------------------------------------------------------------------
# GAE, TorchRL convention (batch-major [N, T, 1]):
#   fn(gamma, lmbda, state_value, next_state_value, reward, done, terminated)


def _torchrl_gae(gamma, lmbda, sv, nsv, r, done, terminated, time_dim: int = -2):
    sv, nsv, r = (x.movedim(time_dim, 0) for x in (sv, nsv, r))
    done, terminated = (x.movedim(time_dim, 0) for x in (done, terminated))
    delta = r + gamma * (~terminated.bool()).to(r.dtype) * nsv - sv
    adv = _reverse_scan(delta, gamma * lmbda * (~done.bool()).to(r.dtype))
    adv = adv.movedim(0, time_dim)
    return adv, adv + sv.movedim(0, time_dim)


def torchrl_done_as_terminated(gamma, lmbda, state_value, next_state_value, reward, done, terminated):
    """``done`` passed where ``terminated`` belongs: no bootstrap at a truncation."""
    return _torchrl_gae(gamma, lmbda, state_value, next_state_value, reward, done, done)


def torchrl_time_dim_confused(gamma, lmbda, state_value, next_state_value, reward, done, terminated):
    """The recursion runs along the batch axis (time_dim=0) instead of time (−2)."""
    return _torchrl_gae(gamma, lmbda, state_value, next_state_value, reward, done, terminated, time_dim=0)


# ---------------------------------------------------------------------------------------------
# Returns, pgmath convention: fn(rewards, terminated, truncated, *, gamma, next_values=None)


def _returns(rewards, cut, boot, gamma, next_values):
    x = rewards + gamma * boot.to(rewards.dtype) * next_values if next_values is not None else rewards
    return _reverse_scan(x, gamma * (~cut).to(rewards.dtype))


def returns_ignore_episode_ends(rewards, terminated, truncated, *, gamma, next_values=None):
    """One discounted cumsum over the whole rollout: returns flow across episode boundaries."""
    last = _last_step(rewards)
    return _returns(rewards, last, last & ~_f(terminated, rewards).bool(), gamma, next_values)


def returns_no_truncation_bootstrap(rewards, terminated, truncated, *, gamma, next_values=None):
    """A truncated episode is cut with 0 instead of γ V(final observation)."""
    term, last = _f(terminated, rewards).bool(), _last_step(rewards)
    cut = term | _f(truncated, rewards).bool() | last
    return _returns(rewards, cut, last & ~term & ~_f(truncated, rewards).bool(), gamma, next_values)


def returns_no_end_bootstrap(rewards, terminated, truncated, *, gamma, next_values=None):
    """The end of the rollout is treated as terminal (V of the observation after it dropped)."""
    term = _f(terminated, rewards).bool()
    trunc = _f(truncated, rewards).bool() & ~_last_step(rewards)
    cut = term | trunc | _last_step(rewards)
    return _returns(rewards, cut, trunc & ~term, gamma, next_values)


def returns_done_mask_wrong_step(rewards, terminated, truncated, *, gamma, next_values=None):
    """Episode ends read one step late: Gₜ = rₜ + γ (1 − doneₜ₊₁) Gₜ₊₁."""
    term = _f(terminated, rewards).bool()
    done = term | _f(truncated, rewards).bool()
    last = _last_step(rewards)
    cut = torch.cat([done[1:], done[-1:]], 0) | last
    return _returns(rewards, cut, last & ~term, gamma, next_values)


# ---------------------------------------------------------------------------------------------
# PPO clipped loss, pgmath convention:
#   fn(log_probs, old_log_probs, advantages, *, clip_eps, [clip_eps_high], [dual_clip], mask=None)


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean()
    m = mask.bool()
    if int(m.sum()) == 0:
        raise ValueError("mask selects no entries")
    return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum() / m.sum()


def _ratio_adv(log_probs, old_log_probs, advantages, *, detach_old=True, detach_adv=True):
    old = old_log_probs.detach() if detach_old else old_log_probs
    adv = advantages.detach() if detach_adv else advantages
    return torch.exp(log_probs - old), adv


def _bounds(clip_eps, clip_eps_high):
    return 1.0 - clip_eps, 1.0 + (clip_eps if clip_eps_high is None else clip_eps_high)


def _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high, **detach):
    """The correct per-entry objective min(ρÂ, clip(ρ)Â) (bugs elsewhere in the mutant)."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages, **detach)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv)


def ppo_minmax_swapped_for_negative_advantages(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                               clip_eps_high=None, dual_clip=None, mask=None):
    """max(ρÂ, clip(ρ)Â) where Â < 0 ("the pessimistic bound flips with the sign")."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    s1, s2 = ratio * adv, torch.clamp(ratio, lo, hi) * adv
    obj = torch.where(adv >= 0, torch.minimum(s1, s2), torch.maximum(s1, s2))
    return -_mean(obj, mask)


def ppo_ratio_inverted(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                       dual_clip=None, mask=None):
    """ρ = π_old/πθ (log-prob difference taken the wrong way round)."""
    ratio = torch.exp(old_log_probs.detach() - log_probs)
    adv = advantages.detach()
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv), mask)


def ppo_old_log_probs_not_detached(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                   clip_eps_high=None, dual_clip=None, mask=None):
    """Gradient flows into log π_old (e.g. recomputed with the live network, no torch.no_grad)."""
    return -_mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high,
                                     detach_old=False), mask)


def ppo_advantages_not_detached(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                clip_eps_high=None, dual_clip=None, mask=None):
    """The policy loss back-propagates into the advantages (and through them into the critic)."""
    return -_mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high,
                                     detach_adv=False), mask)


def ppo_min_over_ratios(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                        dual_clip=None, mask=None):
    """min(ρ, clip(ρ)) · Â: the minimum is taken before multiplying by the advantage."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.minimum(ratio, torch.clamp(ratio, lo, hi)) * adv, mask)


def ppo_surrogate_clamped(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=None, mask=None):
    """clip(ρÂ, 1 − ε, 1 + ε): the surrogate is clamped instead of the ratio."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    s1 = ratio * adv
    return -_mean(torch.minimum(s1, torch.clamp(s1, lo, hi)), mask)


def ppo_no_pessimistic_min(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                           dual_clip=None, mask=None):
    """Only the clipped term clip(ρ)Â, without the min with ρÂ."""
    ratio, adv = _ratio_adv(log_probs, old_log_probs, advantages)
    lo, hi = _bounds(clip_eps, clip_eps_high)
    return -_mean(torch.clamp(ratio, lo, hi) * adv, mask)


def ppo_loss_sign_flipped(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=None, mask=None):
    """Returns the objective instead of the loss (gradient *descent* on the objective)."""
    return _mean(_clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high), mask)


def ppo_mask_ignored_in_denominator(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                    clip_eps_high=None, dual_clip=None, mask=None):
    """sum(obj · mask) / numel: padding tokens count in the mean."""
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    m = torch.ones_like(obj) if mask is None else mask.to(obj.dtype)
    return -(obj * m).sum() / obj.numel()


def ppo_token_mask_shifted(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                           dual_clip=None, mask=None):
    """The response mask is indexed like the logits (position t−1), not like the tokens (t).

    ``pgmath.llm.token_log_probs`` puts log π(tokens[t]) at position t, read from logits[t−1]; a
    mask built for the logits rows is one position early for the log-probs.
    """
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    if mask is None:
        return -obj.mean()
    m = mask.bool()
    shifted = torch.zeros_like(m)
    shifted[..., :-1] = m[..., 1:]
    return -(torch.where(shifted, obj, torch.zeros_like(obj)).sum() / shifted.sum())


def ppo_masked_mean_nan_when_empty(log_probs, old_log_probs, advantages, *, clip_eps=0.2,
                                   clip_eps_high=None, dual_clip=None, mask=None):
    """sum(obj · mask) / mask.sum(): NaN (0/0) when every entry is masked."""
    obj = _clipped_objective(log_probs, old_log_probs, advantages, clip_eps, clip_eps_high)
    m = torch.ones_like(obj) if mask is None else mask.to(obj.dtype)
    return -(obj * m).sum() / m.sum()


# ---------------------------------------------------------------------------------------------
# KL estimators: fn(log_probs, ref_log_probs) -> per-sample estimate of KL(π ‖ π_ref)


def kl_k3_sign_error(log_probs, ref_log_probs):
    """k3 with ρ = π/π_ref instead of π_ref/π: (e^ℓ − 1) − ℓ."""
    ell = log_probs - ref_log_probs
    return torch.expm1(ell) - ell


def kl_k3_log_sign(log_probs, ref_log_probs):
    """(ρ − 1) + log ρ: the log term added instead of subtracted."""
    ell = log_probs - ref_log_probs
    return torch.expm1(-ell) - ell


def kl_k3_exp_then_divide(log_probs, ref_log_probs):
    """ρ = exp(log π_ref) / exp(log π): 0/0 = NaN once the probabilities underflow."""
    rho = torch.exp(ref_log_probs) / torch.exp(log_probs)
    return (rho - 1) - torch.log(rho)


def kl_k2_missing_half(log_probs, ref_log_probs):
    """k2 = ℓ² (the ½ dropped)."""
    return (log_probs - ref_log_probs) ** 2


def kl_k1_reversed(log_probs, ref_log_probs):
    """k1 = log π_ref − log π (the log-ratio of the other direction)."""
    return ref_log_probs - log_probs


# ---------------------------------------------------------------------------------------------
# Group advantages: fn(rewards [G, K]) -> [G, K]


def group_std_without_eps(rewards):
    """(r − mean) / std with no ε and no constant-group guard: 0/0 = NaN for a constant group."""
    return (rewards - rewards.mean(1, keepdim=True)) / rewards.std(1, keepdim=True)


def group_stats_over_batch(rewards):
    """Mean and std over the whole batch instead of within each prompt's group."""
    return (rewards - rewards.mean()) / (rewards.std() + 1e-6)


def group_population_std(rewards):
    """NumPy's default std (ddof = 0) where TRL, verl and pgmath use the unbiased one."""
    centred = rewards - rewards.mean(1, keepdim=True)
    const = rewards.amax(1, keepdim=True) == rewards.amin(1, keepdim=True)
    adv = centred / (rewards.std(1, keepdim=True, correction=0) + 1e-6)
    return torch.where(const, torch.zeros_like(adv), adv)


def rloo_baseline_includes_self(rewards):
    """RLOO with the plain group mean as baseline (the sample's own reward included)."""
    return rewards - rewards.mean(1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# the catalogue

_TRUNC = (
    "SB3 before the timeout fix (DLR-RM/stable-baselines3#633, #651); CleanRL ppo*.py "
    "(vwxyzjn/cleanrl#198, #457)"
)

MUTANTS: tuple[Mutant, ...] = (
    Mutant("gae_no_truncation_bootstrap", "truncation treated as termination: no bootstrap after a time limit",
           _TRUNC, "gae", "pgmath", gae_no_truncation_bootstrap),
    Mutant("gae_bootstrap_through_termination", "δ bootstraps V(sₜ₊₁) even when sₜ₊₁ is terminal",
           "reported in tianshou's _gae_return (thu-ml/tianshou#869)", "gae", "pgmath", gae_bootstrap_through_termination),
    Mutant("gae_reset_observation_bootstrap", "truncation bootstraps from values[t+1], the reset observation",
           "auto-resetting vector envs whose next obs is the reset one (vwxyzjn/cleanrl#448)" ,
           "gae", "pgmath", gae_reset_observation_bootstrap),
    Mutant("gae_next_value_off_by_one", "next value off by one: V(sₜ) used for V(sₜ₊₁)",
           "timeout bootstrap with the stored V(sₜ) (leggedrobotics/rsl_rl#151; DexForce/EmbodiChain#610 review)", "gae", "pgmath",
           gae_next_value_off_by_one),
    Mutant("gae_lambda_on_delta", "λ applied to δₜ as well: Âₜ = λδₜ + γλÂₜ₊₁",
           "no public report linked (a slip transcribing Âₜ = δₜ + γλÂₜ₊₁)", "gae", "pgmath", gae_lambda_on_delta),
    Mutant("gae_trace_crosses_truncation", "the λ-trace is not cut at a truncation (only at termination)",
           "the over-correction warned about in vwxyzjn/cleanrl#448 (mask δ with terminated, the trace with done)", "gae", "pgmath", gae_trace_crosses_truncation),
    Mutant("gae_done_mask_wrong_step", "done mask applied at the wrong step (flags read at t+1)",
           "anthonytorlucci/rlevo#342, RoboVerseOrg/RoboVerse#814", "gae", "pgmath", gae_done_mask_wrong_step),
    Mutant("gae_trace_missing_gamma", "trace decays by λ only: Âₜ = δₜ + λÂₜ₊₁",
           "no public report linked", "gae", "pgmath", gae_trace_missing_gamma),
    Mutant("gae_no_rollout_end_bootstrap", "the rollout end treated as terminal (V(s_T) dropped)",
           "truncated LM responses not bootstrapped (huggingface/trl#1536)", "gae", "pgmath",
           gae_no_rollout_end_bootstrap),
    Mutant("gae_returns_from_normalized_advantages", "value targets built from normalised advantages",
           "normalised value targets (luchris429/model-free-opponent-shaping#1)", "gae", "pgmath", gae_returns_from_normalized_advantages),
    Mutant("sb3_episode_starts_wrong_step", "SB3-style loop reads episode_starts[step] instead of [step+1]",
           "dones-vs-episode-starts confusion (hill-a/stable-baselines#385; vwxyzjn/cleanrl#393)", "gae", "sb3",
           sb3_episode_starts_wrong_step),
    Mutant("sb3_last_step_ignores_dones", "last step bootstraps from last_values although it ended the episode",
           "no public report linked", "gae", "sb3", sb3_last_step_ignores_dones),
    Mutant("sb3_trace_not_reset", "δ masked but the trace is not: Â leaks across episodes",
           "no public report linked", "gae", "sb3", sb3_trace_not_reset),
    Mutant("rlax_values_swapped", "v_tm1 and v_t swapped in δₜ", "no public report linked",
           "gae", "rlax", rlax_values_swapped),
    Mutant("rlax_trace_missing_discount", "trace uses λ without discount_t (no γ, no episode cut)",
           "no public report linked", "gae", "rlax", rlax_trace_missing_discount),
    Mutant("torchrl_done_as_terminated", "done passed as terminated: no bootstrap at truncation",
           "done/terminated mix-up fixed in TorchRL's vectorised GAE (pytorch/rl#2773); TorchRL had only done before pytorch/rl#1581", "gae",
           "torchrl", torchrl_done_as_terminated),
    Mutant("torchrl_time_dim_confused", "recursion along the batch axis (time_dim mix-up)",
           "no public report linked (TorchRL's time_dim argument)", "gae", "torchrl",
           torchrl_time_dim_confused),
    Mutant("returns_ignore_episode_ends", "one discounted cumsum over the rollout, across episodes",
           "no public report linked", "returns", "pgmath", returns_ignore_episode_ends),
    Mutant("returns_no_truncation_bootstrap", "truncated episode cut with 0 instead of γV(final obs)",
           _TRUNC + "; jsboige/CoursIA#7821", "returns", "pgmath", returns_no_truncation_bootstrap),
    Mutant("returns_no_end_bootstrap", "rollout end treated as terminal", "truncated LM responses not bootstrapped (huggingface/trl#1536)" ,
           "returns", "pgmath", returns_no_end_bootstrap),
    Mutant("returns_done_mask_wrong_step", "episode ends read one step late", "anthonytorlucci/rlevo#342" ,
           "returns", "pgmath", returns_done_mask_wrong_step),
    Mutant("ppo_minmax_swapped_for_negative_advantages", "PPO min/max swapped for negative advantages",
           "the A < 0 case of the Spinning Up docs (openai/spinningup#255)", "ppo_loss", "pgmath",
           ppo_minmax_swapped_for_negative_advantages),
    Mutant("ppo_ratio_inverted", "ratio inverted: π_old/πθ", "suspected in hill-a/stable-baselines#447 (there the neglogp sign made the code right)", "ppo_loss", "pgmath", ppo_ratio_inverted),
    Mutant("ppo_old_log_probs_not_detached", "old log-probs not detached (gradient flows into π_old)",
           "ratio with grad through the old policy (thu-ml/tianshou#742)", "ppo_loss", "pgmath",
           ppo_old_log_probs_not_detached),
    Mutant("ppo_advantages_not_detached", "advantages not detached (policy loss trains the critic)",
           "no public report linked (A2C-style Â = R − V without detach)", "ppo_loss", "pgmath", ppo_advantages_not_detached),
    Mutant("ppo_min_over_ratios", "min(ρ, clip ρ)·Â: minimum taken before multiplying by Â",
           "takuseno/ppo#3 (fixed); proposed as a fix in tensorlayer/TensorLayer#1072", "ppo_loss", "pgmath", ppo_min_over_ratios),
    Mutant("ppo_surrogate_clamped", "clip(ρÂ) instead of clip(ρ)Â", "alexis-jacq/Pytorch-DPPO#3 (fixed)" ,
           "ppo_loss", "pgmath", ppo_surrogate_clamped),
    Mutant("ppo_no_pessimistic_min", "clipped term only, no min with ρÂ", "no public report linked",
           "ppo_loss", "pgmath", ppo_no_pessimistic_min),
    Mutant("ppo_loss_sign_flipped", "objective returned instead of loss (sign)", "the loss-vs-objective sign confusion of openai/baselines#1156" ,
           "ppo_loss", "pgmath", ppo_loss_sign_flipped),
    Mutant("ppo_mask_ignored_in_denominator", "masked sum divided by numel (padding counts in the mean)",
           "no public report linked (a length-normalisation mix-up)", "ppo_loss", "pgmath",
           ppo_mask_ignored_in_denominator),
    Mutant("ppo_token_mask_shifted", "token mask shifted by one (indexed like the logits)",
           "Goekdeniz-Guelmez/mlx-lm-lora#80; PrimeIntellect-ai/prime-rl#1525 review", "ppo_loss", "pgmath",
           ppo_token_mask_shifted),
    Mutant("ppo_masked_mean_nan_when_empty", "all-masked batch: 0/0 = NaN loss",
           "huggingface/transformers#16711; allenai/OLMo-core#452", "ppo_loss", "pgmath",
           ppo_masked_mean_nan_when_empty),
    Mutant("kl_k3_sign_error", "k3 sign error: ρ = π/π_ref, (e^ℓ − 1) − ℓ", "Rolv-Arild/rocket-learn#12 (fixed)" ,
           "kl", "pgmath", kl_k3_sign_error, {"estimator": "k3"}),
    Mutant("kl_k3_log_sign", "k3 = (ρ − 1) + log ρ", "no public report linked", "kl", "pgmath",
           kl_k3_log_sign, {"estimator": "k3"}),
    Mutant("kl_k3_exp_then_divide", "ρ from exponentiated log-probs: 0/0 for tiny probabilities",
           "guarded against by a test in callummcdougall/ARENA_3.0#351", "kl", "pgmath", kl_k3_exp_then_divide,
           {"estimator": "k3"}),
    Mutant("kl_k2_missing_half", "k2 = ℓ² (½ dropped)", "no public report linked", "kl", "pgmath",
           kl_k2_missing_half, {"estimator": "k2"}),
    Mutant("kl_k1_reversed", "k1 of the other direction: log π_ref − log π", "direction discussion in DLR-RM/stable-baselines3#419", "kl", "pgmath", kl_k1_reversed,
           {"estimator": "k1"}),
    Mutant("group_std_without_eps", "GRPO std of a constant group: division by zero (NaN)",
           "no public report linked; NVIDIA-NeMo/RL#4161 is the near-zero-std version", "group", "pgmath",
           group_std_without_eps, {"estimator": "grpo"}),
    Mutant("group_stats_over_batch", "GRPO mean/std over the batch instead of per group",
           "XU-YIJIE/grpo-flat#2 (fixed)", "group", "pgmath", group_stats_over_batch, {"estimator": "grpo"}),
    Mutant("group_population_std", "population std (ddof = 0) instead of the unbiased one",
           "np.std's ddof = 0 (one-covenant/grail#9)", "group", "pgmath", group_population_std,
           {"estimator": "grpo"}),
    Mutant("rloo_baseline_includes_self", "RLOO baseline includes the sample's own reward",
           "no public report linked", "group", "pgmath", rloo_baseline_includes_self,
           {"estimator": "rloo"}),
)


def by_name(name: str) -> Mutant:
    """The mutant called ``name`` (``KeyError`` listing the names otherwise)."""
    for m in MUTANTS:
        if m.name == name:
            return m
    raise KeyError(f"no mutant named {name!r}; known: {[m.name for m in MUTANTS]}")


# ---------------------------------------------------------------------------------------------
# diagnosis: which known bug does a wrong output reproduce?


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        if a.size == 1 and b.size == 1:
            a, b = a.reshape(()), b.reshape(())
        else:
            return False
    scale = max(1.0, float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0)
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6 * scale, equal_nan=True))


def _mutant_output(m: Mutant, kind: str, case: Any, extra: Any) -> np.ndarray | None:
    from pgmath.testing.conventions import GAE_CONVENTIONS, RETURNS_CONVENTIONS, to_numpy

    if kind in ("gae", "returns"):
        table = GAE_CONVENTIONS if kind == "gae" else RETURNS_CONVENTIONS
        conv = table[m.convention]
        res = conv.call(m.fn, case, conv.arrays) if kind == "gae" else conv.call(m.fn, case, conv.arrays, True)
        return res.value_targets if extra == "value_targets" else res.advantages
    if kind == "ppo_loss":
        convention, kw, masked, with_grads = extra
        if convention != "pgmath":
            return None
        mask = case.mask if masked else None
        xs = [x.detach().clone().requires_grad_(with_grads)
              for x in (case.log_probs, case.old_log_probs, case.advantages)]
        out = m.fn(*xs, mask=mask, **kw)
        loss = out[0] if isinstance(out, tuple) else out
        parts = [to_numpy(loss)[0].reshape(1)]
        if with_grads:  # [loss, ∂/∂log_probs, ∂/∂old_log_probs, ∂/∂advantages], as the check has them
            grads = torch.autograd.grad(loss, xs, allow_unused=True)
            parts += [to_numpy(torch.zeros_like(x) if g is None else g)[0].reshape(-1) for g, x in zip(grads, xs)]
        return np.concatenate(parts)
    if kind == "kl":
        if m.options.get("estimator") != extra:
            return None
        return to_numpy(m.fn(case.log_probs, case.ref_log_probs))[0]
    if kind == "group":
        estimator, normalize_std, _eps = extra
        if m.options.get("estimator") != estimator or (estimator == "grpo" and not normalize_std):
            return None
        return to_numpy(m.fn(case.rewards))[0]
    return None


def diagnose(kind: str, case: Any, got: np.ndarray, expected: np.ndarray, extra: Any = None) -> list[str]:
    """Names (with descriptions) of the catalogued mutants whose output on ``case`` equals ``got``.

    ``kind`` is the check ("gae", "returns", "ppo_loss", "kl", "group"); ``got`` the user's
    output and ``expected`` the reference's, in pgmath's layout; ``extra`` what the kind needs
    (gae: ``"value_targets"`` to compare the second output). Mutants that agree with the reference
    on ``case`` cannot explain a difference and are skipped, as are mutants that raise or do not
    apply.
    """
    found = []
    for m in MUTANTS:
        if m.check != kind:
            continue
        try:
            out = _mutant_output(m, kind, case, extra)
        except Exception:  # a mutant that cannot run on this case does not match it
            continue
        if out is None:
            continue
        if kind == "kl" and np.asarray(got).size == 1 and out.size > 1:
            out = np.asarray(np.mean(out))
        if _same(got, out) and not _same(out, expected):
            found.append(f"{m.name} ({m.bug})")
    return found
