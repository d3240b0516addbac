"""Specs of the TD errors, GAE(γ, λ) and the λ-return.

    δₜ = rₜ + γ (1 − termₜ) V(sₜ₊₁) − V(sₜ)
    Âₜ = δₜ + γλ (1 − termₜ)(1 − truncₜ) Âₜ₊₁,   Â_{T−1} = δ_{T−1}
    G^λₜ = Âₜ + V(sₜ)
    Ãᵢ = (Âᵢ − Ā)/(s + eps), s the Bessel-corrected std over the selected entries

Sources: Sutton & Barto (2nd ed.), eq. 6.5 (TD error) and §12.1 (λ-return); Schulman et al.
(2015), "High-Dimensional Continuous Control Using Generalized Advantage Estimation", eqs. 11–16;
Pardo et al. (2018), "Time Limits in Reinforcement Learning" (bootstrap at truncation).

The wrong variants of GAE that are one-step slips are written as steps (the same function runs on
tensors here and on sympy symbols in :mod:`pgmath.proofs.gae`); the others as whole functions.
Variants in the layouts of Stable-Baselines3, rlax and TorchRL are written in those layouts and
run through the adapters of :mod:`pgmath.testing.conventions`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from pgmath.advantages import gae, gae_reference, lambda_returns, normalize_advantages
from pgmath.returns import discounted_returns_reference, td_errors
from pgmath.scan import discounted_cumsum_reference
from pgmath.specs import extremes
from pgmath.specs.gradients import gradcheck_property
from pgmath.specs.recursions import gae_function, rollout_inputs, rollout_suite
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    backends,
    max_abs_error,
    outcome_within,
)
from pgmath.validation import (
    validate_finite,
    validate_float_tensor,
    validate_mask,
    validate_rollout,
    validate_unit_interval,
)
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY", "gae_step", "normalize_advantages_reference", "td_errors_reference"]

F64 = torch.float64

# ---------------------------------------------------------------------------------------------
# TD errors


def td_errors_reference(rewards, values, next_values, terminated, *, gamma):
    """δₜ by a plain loop over t (each step independent of the others)."""
    validate_rollout(rewards, values=values, next_values=next_values, terminated=terminated)
    gamma = validate_unit_interval(gamma, "gamma")
    out = torch.empty_like(rewards)
    for t in range(rewards.shape[0]):
        boot = torch.where(terminated[t].bool(), torch.zeros_like(next_values[t]), next_values[t])
        out[t] = rewards[t] + gamma * boot - values[t]
    return out


def _td_by_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """δₜ = rₜ + γ V(sₜ₊₁) − V(sₜ), and rₜ − V(sₜ) after a termination, entry by entry."""
    err = 0.0
    for ro in rollout_suite(ctx, 20):
        for gamma in (0.0, 0.9, 1.0):
            got = impl(ro.rewards, ro.values, ro.next_values, ro.terminated, gamma=gamma)
            boot = torch.where(ro.terminated, torch.zeros_like(ro.next_values), ro.next_values)
            err = max(err, max_abs_error(got, ro.rewards + gamma * boot - ro.values))
    return outcome_within(err)


def _td_ignores_truncation(impl: Callable, ctx: VerifyContext) -> Outcome:
    """A truncated step still bootstraps: δ does not depend on the truncated flags."""
    err = 0.0
    for ro in rollout_suite(ctx, 21):
        want = ro.rewards + 0.9 * (~ro.terminated).to(F64) * ro.next_values - ro.values
        got = impl(ro.rewards, ro.values, ro.next_values, ro.terminated, gamma=0.9)
        err = max(err, max_abs_error(got, want))
    return outcome_within(err)


def td_terminal_bootstrapped(rewards, values, next_values, terminated, *, gamma):
    """δₜ = rₜ + γ V(sₜ₊₁) − V(sₜ) even where sₜ₊₁ is terminal."""
    return rewards + gamma * next_values - values


def td_values_swapped(rewards, values, next_values, terminated, *, gamma):
    """δₜ = rₜ + γ V(sₜ) − V(sₜ₊₁): current and next values swapped."""
    nt = (~terminated.bool()).to(rewards.dtype)
    return rewards + gamma * nt * values - next_values


def _td_bad_inputs() -> tuple[BadInput, ...]:
    def z(dev):
        return torch.zeros(5, 2, dtype=F64, device=dev), torch.zeros(5, 2, dtype=torch.bool, device=dev)

    return (
        BadInput("integer rewards", lambda f, d: f(z(d)[0].long(), z(d)[0], z(d)[0], z(d)[1], gamma=0.9), "rewards"),
        BadInput("next_values shape", lambda f, d: f(z(d)[0], z(d)[0], z(d)[0][:, :1], z(d)[1], gamma=0.9), "next_values"),
        BadInput("gamma > 1", lambda f, d: f(z(d)[0], z(d)[0], z(d)[0], z(d)[1], gamma=1.5), "gamma"),
        BadInput("terminated holds 2", lambda f, d: f(z(d)[0], z(d)[0], z(d)[0], z(d)[0] + 2, gamma=0.9), "terminated"),
    )


TD_ERRORS = Spec(
    name="td_errors",
    title="TD error δₜ",
    area="core",
    formula="δₜ = rₜ + γ (1 − termₜ) V(sₜ₊₁) − V(sₜ)",
    source="Sutton & Barto (2nd ed.), eq. 6.5",
    function=td_errors,
    reference=td_errors_reference,
    implementations={"fast": td_errors, "reference": td_errors_reference},
    properties=(
        Property("definition", "== rₜ + γ(1 − termₜ)V(sₜ₊₁) − V(sₜ) entry by entry", _td_by_definition),
        Property("truncation_bootstraps", "a truncated step still bootstraps from V(sₜ₊₁)", _td_ignores_truncation),
    ),
    wrong_variants=(
        WrongVariant("td_terminal_bootstrapped", "terminal next state bootstrapped (done mask missing)",
                     "thu-ml/tianshou#869 (the same slip inside a GAE)", td_terminal_bootstrapped),
        WrongVariant("td_values_swapped", "V(sₜ) and V(sₜ₊₁) swapped", "derivation", td_values_swapped),
    ),
    bad_inputs=_td_bad_inputs(),
    inputs=functools.partial(rollout_inputs, lam=False, truncated=False),
    doc="docs/formulas/td-errors.md",
    proof="pgmath.proofs.gae",
)

# ---------------------------------------------------------------------------------------------
# GAE: the step, its wrong steps, and the whole-function wrong variants


def gae_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    """Âₜ = δₜ + γλ(1 − termₜ)(1 − truncₜ)(1 − lastₜ)Âₜ₊₁, δₜ = rₜ + γ(1 − termₜ)V(sₜ₊₁) − V(sₜ)."""
    delta = r + gamma * (1 - term) * v_next - v
    return delta + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _no_truncation_bootstrap_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    done = 1 - (1 - term) * (1 - trunc)
    return r + gamma * (1 - done) * v_next - v + gamma * lam * (1 - done) * (1 - last) * a_next


def _bootstrap_through_termination_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    return r + gamma * v_next - v + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _next_value_off_by_one_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    return r + gamma * (1 - term) * v - v + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _lambda_on_delta_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    delta = r + gamma * (1 - term) * v_next - v
    return lam * delta + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _trace_crosses_truncation_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    delta = r + gamma * (1 - term) * v_next - v
    return delta + gamma * lam * (1 - term) * (1 - last) * a_next


def _trace_missing_gamma_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    delta = r + gamma * (1 - term) * v_next - v
    return delta + lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _no_rollout_end_bootstrap_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    delta = r + gamma * (1 - term) * (1 - last) * v_next - v
    return delta + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def _article_step(r, v, v_next, term, trunc, last, a_next, gamma, lam):
    """The source article's PPO loop: Aₜ = rₜ + γ Aₜ₊₁ maskₜ − V(sₜ) (no δ, no λ)."""
    mask = (1 - term) * (1 - trunc) * (1 - last)
    return r + gamma * a_next * mask - v


def gae_reset_observation_bootstrap(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """At a truncation the bootstrap uses values[t+1], the *reset* observation's value."""
    term = terminated.bool()
    done = term | truncated.bool()
    nv = torch.cat([values[1:], next_values[-1:]], 0)
    delta = rewards + gamma * (~term).to(rewards.dtype) * nv - values
    stop = done.clone()
    stop[-1] = True
    return discounted_cumsum_reference(delta, gamma * lam * (~stop).to(rewards.dtype))


def gae_done_mask_wrong_step(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """The masks of step t are read from step t+1 (flags stored one slot late)."""
    term = terminated.bool()
    done = term | truncated.bool()
    term_n = torch.cat([term[1:], term[-1:]], 0)
    done_n = torch.cat([done[1:], done[-1:]], 0)
    delta = rewards + gamma * (~term_n).to(rewards.dtype) * next_values - values
    done_n[-1] = True
    return discounted_cumsum_reference(delta, gamma * lam * (~done_n).to(rewards.dtype))


# Stable-Baselines3 layout (NumPy [T, n_envs]): fn(rewards, values, episode_starts, last_values,
# dones, *, gamma, lam) — the loop of RolloutBuffer.compute_returns_and_advantage with one slip.


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


# rlax layout (one sequence, NumPy): fn(r_t [T], discount_t [T], lambda_, values [T+1])


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
    return _rlax_scan(r_t + discount_t * v_t - v_tm1, discount_t * lambda_)


def rlax_trace_missing_discount(r_t, discount_t, lambda_, values):
    """Âₜ = δₜ + λ Âₜ₊₁: the trace uses λ but not discount_t (no γ, no episode cut)."""
    delta = r_t + discount_t * values[1:] - values[:-1]
    return _rlax_scan(delta, np.full_like(delta, lambda_))


# TorchRL layout (batch-major [N, T, 1]): fn(gamma, lmbda, state_value, next_state_value, reward,
# done, terminated) -> (advantage, value_target)


def _torchrl_gae(gamma, lmbda, sv, nsv, r, done, terminated, time_dim: int = -2):
    sv, nsv, r = (x.movedim(time_dim, 0) for x in (sv, nsv, r))
    done, terminated = (x.movedim(time_dim, 0) for x in (done, terminated))
    delta = r + gamma * (~terminated.bool()).to(r.dtype) * nsv - sv
    adv = discounted_cumsum_reference(delta, gamma * lmbda * (~done.bool()).to(r.dtype))
    adv = adv.movedim(0, time_dim)
    return adv, adv + sv.movedim(0, time_dim)


def torchrl_done_as_terminated(gamma, lmbda, state_value, next_state_value, reward, done, terminated):
    """``done`` passed where ``terminated`` belongs: no bootstrap at a truncation."""
    return _torchrl_gae(gamma, lmbda, state_value, next_state_value, reward, done, done)


def torchrl_time_dim_confused(gamma, lmbda, state_value, next_state_value, reward, done, terminated):
    """The recursion runs along the batch axis (time_dim=0) instead of time (−2)."""
    return _torchrl_gae(gamma, lmbda, state_value, next_state_value, reward, done, terminated, time_dim=0)


_TRUNC = (
    "SB3 before the timeout fix (DLR-RM/stable-baselines3#633, #651); CleanRL ppo*.py "
    "(vwxyzjn/cleanrl#198, #457)"
)


def _step_variant(name: str, bug: str, seen_in: str, step) -> WrongVariant:
    return WrongVariant(name, bug, seen_in, gae_function(step, bug), step=step)


GAE_VARIANTS: tuple[WrongVariant, ...] = (
    _step_variant("gae_no_truncation_bootstrap", "truncation treated as termination: no bootstrap after a time limit",
                  _TRUNC, _no_truncation_bootstrap_step),
    _step_variant("gae_bootstrap_through_termination", "δ bootstraps V(sₜ₊₁) even when sₜ₊₁ is terminal",
                  "reported in tianshou's _gae_return (thu-ml/tianshou#869)", _bootstrap_through_termination_step),
    WrongVariant("gae_reset_observation_bootstrap", "truncation bootstraps from values[t+1], the reset observation",
                 "auto-resetting vector envs whose next obs is the reset one (vwxyzjn/cleanrl#448)",
                 gae_reset_observation_bootstrap),
    _step_variant("gae_next_value_off_by_one", "next value off by one: V(sₜ) used for V(sₜ₊₁)",
                  "timeout bootstrap with the stored V(sₜ) (leggedrobotics/rsl_rl#151; DexForce/EmbodiChain#610 review)",
                  _next_value_off_by_one_step),
    _step_variant("gae_lambda_on_delta", "λ applied to δₜ as well: Âₜ = λδₜ + γλÂₜ₊₁",
                  "no public report linked (a slip transcribing Âₜ = δₜ + γλÂₜ₊₁); derivation",
                  _lambda_on_delta_step),
    _step_variant("gae_trace_crosses_truncation", "the λ-trace is not cut at a truncation (only at termination)",
                  "the over-correction warned about in vwxyzjn/cleanrl#448 (mask δ with terminated, the trace with done)",
                  _trace_crosses_truncation_step),
    WrongVariant("gae_done_mask_wrong_step", "done mask applied at the wrong step (flags read at t+1)",
                 "anthonytorlucci/rlevo#342, RoboVerseOrg/RoboVerse#814", gae_done_mask_wrong_step),
    _step_variant("gae_trace_missing_gamma", "trace decays by λ only: Âₜ = δₜ + λÂₜ₊₁",
                  "no public report linked; derivation", _trace_missing_gamma_step),
    _step_variant("gae_no_rollout_end_bootstrap", "the rollout end treated as terminal (V(s_T) dropped)",
                  "truncated LM responses not bootstrapped (huggingface/trl#1536)", _no_rollout_end_bootstrap_step),
    _step_variant("gae_article", "the source article's loop: Aₜ = rₜ + γAₜ₊₁·maskₜ − V(sₜ) (no δ, no λ)",
                  "the source article (shared/seeds/000), see docs/errata.md", _article_step),
    WrongVariant("sb3_episode_starts_wrong_step", "SB3-style loop reads episode_starts[step] instead of [step+1]",
                 "dones-vs-episode-starts confusion (hill-a/stable-baselines#385; vwxyzjn/cleanrl#393)",
                 sb3_episode_starts_wrong_step, convention="sb3"),
    WrongVariant("sb3_last_step_ignores_dones", "last step bootstraps from last_values although it ended the episode",
                 "no public report linked; derivation", sb3_last_step_ignores_dones, convention="sb3"),
    WrongVariant("sb3_trace_not_reset", "δ masked but the trace is not: Â leaks across episodes",
                 "no public report linked; derivation", sb3_trace_not_reset, convention="sb3"),
    WrongVariant("rlax_values_swapped", "v_tm1 and v_t swapped in δₜ", "no public report linked; derivation",
                 rlax_values_swapped, convention="rlax"),
    WrongVariant("rlax_trace_missing_discount", "trace uses λ without discount_t (no γ, no episode cut)",
                 "no public report linked; derivation", rlax_trace_missing_discount, convention="rlax"),
    WrongVariant("torchrl_done_as_terminated", "done passed as terminated: no bootstrap at truncation",
                 "done/terminated mix-up fixed in TorchRL's vectorised GAE (pytorch/rl#2773); TorchRL had only "
                 "done before pytorch/rl#1581", torchrl_done_as_terminated, convention="torchrl"),
    WrongVariant("torchrl_time_dim_confused", "recursion along the batch axis (time_dim mix-up)",
                 "no public report linked (TorchRL's time_dim argument)", torchrl_time_dim_confused,
                 convention="torchrl"),
)


# ---------------------------------------------------------------------------------------------
# GAE properties


def _gae_vs_reference(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for ro in rollout_suite(ctx, 1):
        for gamma, lam in [(0.99, 0.95), (1.0, 1.0), (0.5, 0.0), (0.0, 0.7)]:
            ref = gae_reference(*ro, gamma=gamma, lam=lam)
            err = max(err, max_abs_error(impl(*ro, gamma=gamma, lam=lam), ref))
    return outcome_within(err)


def _episode_end(ro, t: int, col: tuple[int, ...]) -> int:
    """The last step of the episode that contains step t (the rollout's end if none sooner)."""
    T = ro.rewards.shape[0]
    for k in range(t, T):
        if bool(ro.terminated[(k, *col)]) or bool(ro.truncated[(k, *col)]):
            return k
    return T - 1


def _gae_by_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Âₜ = Σₗ (γλ)ˡ δₜ₊ₗ over the rest of the episode, summed term by term (no recursion)."""
    err = 0.0
    for ro in rollout_suite(ctx, 2)[:3]:
        for gamma, lam in [(0.9, 0.8), (1.0, 0.5)]:
            got = impl(*ro, gamma=gamma, lam=lam)
            flat = [x.reshape(x.shape[0], -1) for x in (ro.rewards, ro.values, ro.next_values,
                                                         ro.terminated, ro.truncated)]
            r, v, nv, term, _ = flat
            g2 = got.reshape(got.shape[0], -1)
            sub = type(ro)(*flat)
            for j in range(r.shape[1]):
                for t in range(r.shape[0]):
                    e = _episode_end(sub, t, (j,))
                    want = sum((gamma * lam) ** (k - t)
                               * (float(r[k, j]) + gamma * (not bool(term[k, j])) * float(nv[k, j]) - float(v[k, j]))
                               for k in range(t, e + 1))
                    err = max(err, abs(float(g2[t, j]) - want))
    return outcome_within(err)


def _gae_lambda0_is_td(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for ro in rollout_suite(ctx, 3):
        for gamma in (0.0, 0.9, 1.0):
            td = td_errors_reference(ro.rewards, ro.values, ro.next_values, ro.terminated, gamma=gamma)
            err = max(err, max_abs_error(impl(*ro, gamma=gamma, lam=0.0), td))
    return outcome_within(err)


def _gae_lambda1_is_return_minus_v(impl: Callable, ctx: VerifyContext) -> Outcome:
    """λ = 1 telescopes: Σ γˡ δₜ₊ₗ = Gₜ − V(sₜ), G bootstrapped from V at truncation/rollout end."""
    err = 0.0
    for ro in rollout_suite(ctx, 4):
        for gamma in (0.9, 1.0):
            G = discounted_returns_reference(ro.rewards, ro.terminated, ro.truncated, gamma=gamma,
                                             next_values=ro.next_values)
            err = max(err, max_abs_error(impl(*ro, gamma=gamma, lam=1.0), G - ro.values))
    return outcome_within(err)


def _gae_long_sequence(impl: Callable, ctx: VerifyContext) -> Outcome:
    """T = 100 000 with γλ = 0.99·0.95 in float64: no overflow/underflow, exact to 1e-10."""
    from pgmath.rollouts import random_rollout

    T = 20_000 if ctx.quick else 100_000
    ro = random_rollout(T, (), p_terminate=0.0, p_truncate=0.0, dtype=F64, device=ctx.device,
                        generator=ctx.generator(7))
    out = impl(*ro, gamma=0.99, lam=0.95)
    err = max_abs_error(out, gae_reference(*ro, gamma=0.99, lam=0.95))
    o = outcome_within(err if bool(torch.isfinite(torch.as_tensor(out)).all()) else math.inf)
    o.statistic += f" (T = {T})"
    return o


def _gae_bad_inputs() -> tuple[BadInput, ...]:
    def z(dev):
        return torch.zeros(5, 2, dtype=F64, device=dev)

    def f0(dev):
        return torch.zeros(5, 2, dtype=torch.bool, device=dev)

    def nan(dev):
        x = z(dev)
        x[2, 1] = float("nan")
        return x

    kw = {"gamma": 0.9, "lam": 0.9}
    return (
        BadInput("next_values shape", lambda f, d: f(z(d), z(d), torch.zeros(5, dtype=F64, device=d), f0(d), f0(d), **kw), "next_values"),
        BadInput("NaN reward", lambda f, d: f(nan(d), z(d), z(d), f0(d), f0(d), **kw), "rewards"),
        BadInput("NaN next value", lambda f, d: f(z(d), z(d), nan(d), f0(d), f0(d), **kw), "next_values"),
        BadInput("gamma > 1", lambda f, d: f(z(d), z(d), z(d), f0(d), f0(d), gamma=1.01, lam=0.9), "gamma"),
        BadInput("lam < 0", lambda f, d: f(z(d), z(d), z(d), f0(d), f0(d), gamma=0.9, lam=-0.1), "lam"),
        BadInput("done flag 2", lambda f, d: f(z(d), z(d), z(d), z(d) + 2, f0(d), **kw), "terminated"),
        BadInput("truncated float 0.5", lambda f, d: f(z(d), z(d), z(d), f0(d), z(d) + 0.5, **kw), "truncated"),
        BadInput("empty time axis", lambda f, d: f(z(d)[:0], z(d)[:0], z(d)[:0], f0(d)[:0], f0(d)[:0], **kw), "rewards"),
    )



GAE = Spec(
    name="gae",
    title="GAE(γ, λ)",
    area="core",
    formula="Âₜ = δₜ + γλ(1 − termₜ)(1 − truncₜ)Âₜ₊₁ (Â_{T−1} = δ_{T−1}) = Σₗ (γλ)ˡ δₜ₊ₗ within the episode",
    source="Schulman et al. (2015), eqs. 11–16; Pardo et al. (2018) for truncation",
    function=gae,
    reference=gae_reference,
    implementations={**backends(gae), "reference": gae_reference},
    properties=(
        Property("fast_equals_reference", "fast scan == reference loop, float64", _gae_vs_reference),
        Property("definition", "== Σₗ (γλ)ˡ δₜ₊ₗ summed term by term", _gae_by_definition),
        Property("lambda0_is_td", "λ = 0 gives the TD errors δₜ", _gae_lambda0_is_td),
        Property("lambda1_is_return_minus_value", "λ = 1 telescopes to Gₜ − V(sₜ)", _gae_lambda1_is_return_minus_v),
        Property("long_sequence", "long sequence: T = 100 000, γλ = 0.9405", _gae_long_sequence),
    ),
    wrong_variants=GAE_VARIANTS,
    bad_inputs=_gae_bad_inputs(),
    inputs=rollout_inputs,
    doc="docs/formulas/gae.md",
    proof="pgmath.proofs.gae",
    harness="check_gae",
    step=gae_step,
    extra={"cpu_only": ("numba",)},
)

# ---------------------------------------------------------------------------------------------
# λ-returns


def lambda_returns_reference(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """G^λₜ by its own recursion, backwards in time:
    G^λₜ = rₜ + γ(1 − termₜ)V(sₜ₊₁) + γλ(1 − termₜ)(1 − truncₜ)(G^λₜ₊₁ − V(sₜ₊₁)) inside the
    rollout, G^λ_{T−1} = r_{T−1} + γ(1 − term_{T−1})V(s_T). Where ``next_values[t] ==
    values[t+1]`` inside an episode (a consistent rollout) this is the textbook
    G^λₜ = rₜ + γ[(1 − λ)V(sₜ₊₁) + λG^λₜ₊₁]; written with ``values[t+1]`` it also holds when
    they differ, as Âₜ + V(sₜ) does."""
    validate_rollout(rewards, values=values, next_values=next_values, terminated=terminated,
                     truncated=truncated)
    gamma, lam = validate_unit_interval(gamma, "gamma"), validate_unit_interval(lam, "lam")
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    # backward in time: t = T-1, …, 0
    for t in range(T - 1, -1, -1):
        nt = (~terminated[t].bool()).to(rewards.dtype)
        g = rewards[t] + gamma * nt * next_values[t]
        if t < T - 1:
            goes_on = nt * (~truncated[t].bool()).to(rewards.dtype)
            g = g + gamma * lam * goes_on * (out[t + 1] - values[t + 1])
        out[t] = g
    return out


def _lambda_return_recursion(impl: Callable, ctx: VerifyContext) -> Outcome:
    """G^λₜ = rₜ + γ[(1−λ)V(sₜ₊₁) + λ G^λₜ₊₁] inside an episode; rₜ + γ(1−termₜ)V(sₜ₊₁) at its end."""
    err = 0.0
    for ro in rollout_suite(ctx, 4):
        for gamma, lam in [(0.99, 0.95), (0.8, 0.3)]:
            G = impl(*ro, gamma=gamma, lam=lam)
            nt = (~ro.terminated).to(F64)
            end = ro.terminated | ro.truncated
            end[-1] = True
            G_next = torch.cat([G[1:], torch.zeros_like(G[:1])])
            inside = ro.rewards + gamma * ((1 - lam) * ro.next_values + lam * G_next)
            at_end = ro.rewards + gamma * nt * ro.next_values
            err = max(err, max_abs_error(G, torch.where(end, at_end, inside)))
    return outcome_within(err)


def _lambda_return_is_gae_plus_value(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for ro in rollout_suite(ctx, 5):
        want = gae_reference(*ro, gamma=0.95, lam=0.7) + ro.values
        err = max(err, max_abs_error(impl(*ro, gamma=0.95, lam=0.7), want))
    return outcome_within(err)


def lambda_returns_plus_value_twice(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """G^λ = Â + 2V: the value added once more (targets built from returns, not advantages)."""
    return lambda_returns(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam) + values


def lambda_returns_from_normalized_advantages(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    """Value targets built from the *normalised* advantages: norm(Â) + V."""
    adv = gae_reference(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
    if adv.numel() > 1:
        norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    else:
        norm = adv - adv.mean()
    return norm + values


def _with_reference_advantages(fn: Callable) -> Callable:
    """Harness form of a λ-return function: ``(Â, value targets)``, Â from the reference."""

    def harness_fn(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        adv = gae_reference(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
        return adv, fn(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)

    harness_fn.__name__ = getattr(fn, "__name__", "lambda_returns")
    return harness_fn


LAMBDA_RETURNS = Spec(
    name="lambda_returns",
    title="λ-return",
    area="core",
    formula="G^λₜ = Âₜ + V(sₜ) = rₜ + γ[(1 − λ)V(sₜ₊₁) + λG^λₜ₊₁] inside an episode",
    source="Sutton & Barto (2nd ed.), §12.1 (eq. 12.4 in recursive form)",
    function=lambda_returns,
    reference=lambda_returns_reference,
    implementations={**backends(lambda_returns), "reference": lambda_returns_reference},
    properties=(
        Property("recursion", "satisfies its recursive definition", _lambda_return_recursion),
        Property("gae_plus_value", "== GAE + V(sₜ) (reference loop)", _lambda_return_is_gae_plus_value),
    ),
    wrong_variants=(
        WrongVariant("lambda_returns_plus_value_twice", "V added twice: G^λ = Â + 2V", "derivation",
                     lambda_returns_plus_value_twice),
        WrongVariant("gae_returns_from_normalized_advantages", "value targets built from normalised advantages",
                     "normalised value targets (luchris429/model-free-opponent-shaping#1)",
                     lambda_returns_from_normalized_advantages),
    ),
    inputs=rollout_inputs,
    doc="docs/formulas/gae.md",
    proof="pgmath.proofs.gae",
    harness="check_gae",
    extra={"cpu_only": ("numba",), "harness_form": _with_reference_advantages},
)

# ---------------------------------------------------------------------------------------------
# advantage normalisation


def normalize_advantages_reference(adv, mask=None, eps=1e-8):
    """(Âᵢ − Ā)/(s + eps) with Ā = Σ Âᵢ/n and s² = Σ (Âᵢ − Ā)²/(n − 1) over the selected entries,
    by plain loops; masked-out entries are 0."""
    validate_float_tensor(adv, "adv", finite=False)
    if adv.dim() == 0 or adv.numel() == 0:
        raise ValueError("adv must be a non-empty tensor")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    m = None if mask is None else validate_mask(mask, "mask", adv.shape, adv.device)
    validate_finite(adv, "adv", mask=m)
    flat = adv.reshape(-1)
    keep = [i for i in range(flat.numel()) if m is None or bool(m.reshape(-1)[i])]
    if len(keep) < 2:
        raise ValueError(f"{'mask' if m is not None else 'adv'} must select at least 2 entries, got {len(keep)}")
    mean = sum(flat[i] for i in keep) / len(keep)
    std = torch.sqrt(sum((flat[i] - mean) ** 2 for i in keep) / (len(keep) - 1))
    selected = set(keep)
    out = [(flat[i] - mean) / (std + eps) if i in selected else torch.zeros((), dtype=adv.dtype, device=adv.device)
           for i in range(flat.numel())]
    return torch.stack(out).reshape(adv.shape)


def _normalize_cases(ctx: VerifyContext, offset: int):
    g = ctx.generator(offset)
    out = []
    for shape in [(2,), (50,), (6, 7)]:
        x = 3 * torch.randn(shape, dtype=F64, device=ctx.device, generator=g) + 7
        m = torch.rand(shape, device=ctx.device, generator=g) < 0.6
        m.view(-1)[:2] = True
        out.append((x, m))
    return out


def _normalize_moments(impl: Callable, ctx: VerifyContext) -> Outcome:
    """eps = 0: the selected outputs have mean 0 and Bessel-corrected std 1 (Python sums)."""
    err = 0.0
    for x, m in _normalize_cases(ctx, 140):
        for mask in (None, m):
            y = impl(x, mask, eps=0.0).reshape(-1)
            sel = [float(y[i]) for i in range(y.numel()) if mask is None or bool(mask.reshape(-1)[i])]
            mean = sum(sel) / len(sel)
            var = sum((v - mean) ** 2 for v in sel) / (len(sel) - 1)
            err = max(err, abs(mean), abs(math.sqrt(var) - 1.0))
    return outcome_within(err)


def _normalize_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """== (Â − mean)/(torch.std(unbiased) + eps) of the selected entries, 0 where masked; masked-out
    NaN changes nothing."""
    err = 0.0
    for x, m in _normalize_cases(ctx, 141):
        for eps in (1e-8, 0.5):
            want = (x - x.mean()) / (x.std() + eps)
            err = max(err, max_abs_error(impl(x, None, eps=eps), want))
            sel = x[m]
            want_m = torch.zeros_like(x)
            want_m[m] = (sel - sel.mean()) / (sel.std() + eps)
            nan_out = torch.where(m, x, torch.full_like(x, float("nan")))
            err = max(err, max_abs_error(impl(nan_out, m, eps=eps), want_m))
    return outcome_within(err)


def _normalize_constant_batch(impl: Callable, ctx: VerifyContext) -> Outcome:
    """A constant batch (s = 0) gives 0 everywhere with eps > 0: finite, no 0/0."""
    x = torch.full((5,), 2.5, dtype=F64, device=ctx.device)
    return outcome_within(max_abs_error(impl(x, None, eps=1e-8), torch.zeros_like(x)))


def _normalize_gradcheck_cases(impl, ctx):
    (x, _), (_, _), (y, m) = _normalize_cases(ctx, 142)
    return [(lambda v: impl(v), (x.clone().requires_grad_(True),)),
            (lambda v: impl(v, m[:2], eps=0.1), (y[:2].clone().requires_grad_(True),))]


def normalize_population_std(adv, mask=None, eps=1e-8):
    """Population std (ddof = 0, NumPy's default) instead of the unbiased one."""
    sel = adv if mask is None else adv[mask.bool()]
    out = (adv - sel.mean()) / (sel.std(correction=0) + eps)
    return out if mask is None else torch.where(mask.bool(), out, torch.zeros_like(out))


def normalize_mask_ignored(adv, mask=None, eps=1e-8):
    """Statistics over every entry, padding included (the mask only zeroes the output)."""
    out = (adv - adv.mean()) / (adv.std() + eps)
    return out if mask is None else torch.where(mask.bool(), out, torch.zeros_like(out))


def normalize_without_eps(adv, mask=None, eps=1e-8):
    """eps ignored: a constant batch divides 0 by 0."""
    sel = adv if mask is None else adv[mask.bool()]
    out = (adv - sel.mean()) / sel.std()
    return out if mask is None else torch.where(mask.bool(), out, torch.zeros_like(out))


def _normalize_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(t):
        x, m, use_mask, constant = t
        if constant:
            x = np.full_like(x, x.flat[0])
        if not use_mask:
            return Call((torch.as_tensor(x),))
        m = m.copy()
        m.flat[:2] = True
        return Call((torch.as_tensor(np.where(m, x, np.nan)), torch.as_tensor(m)))

    shape = st.sampled_from([(2,), (3,), (6,), (2, 3)])
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=st.integers(-20, 20).map(lambda i: i / 4)),
        arrays(np.bool_, s, elements=st.booleans()),
        st.booleans(), st.booleans(),
    )).map(build)


def _normalize_bad_inputs() -> tuple[BadInput, ...]:
    def x(d, *vals):
        return torch.tensor(vals or (1.0, 2.0, 4.0, 0.5), dtype=F64, device=d)

    def m(d, *vals):
        return torch.tensor(vals, dtype=torch.bool, device=d)

    return (
        BadInput("one entry", lambda f, d: f(x(d, 1.0)), "adv"),
        BadInput("mask selects one entry", lambda f, d: f(x(d), m(d, True, False, False, False)), "mask"),
        BadInput("mask shape", lambda f, d: f(x(d), m(d, True, True, True)), "mask"),
        BadInput("inf entry", lambda f, d: f(x(d, 1.0, float("inf"))), "adv"),
        BadInput("eps < 0", lambda f, d: f(x(d), eps=-1.0), "eps"),
        BadInput("integer adv", lambda f, d: f(x(d).long()), "adv"),
    )


NORMALIZE_ADVANTAGES = Spec(
    name="normalize_advantages",
    title="advantage normalisation",
    area="core",
    formula="Ãᵢ = (Âᵢ − Ā)/(s + eps), Ā = mean, s² = Σ(Âᵢ − Ā)²/(n − 1) over the selected entries",
    source="the PPO implementations of OpenAI baselines, Stable-Baselines3 and CleanRL (torch.std)",
    function=normalize_advantages,
    reference=normalize_advantages_reference,
    implementations={"fast": normalize_advantages, "reference": normalize_advantages_reference},
    properties=(
        Property("moments", "eps = 0: mean 0, unbiased std 1 over the selected entries", _normalize_moments),
        Property("definition", "== (Â − mean)/(torch.std + eps), masked-out NaN ignored", _normalize_definition),
        Property("constant_batch", "constant batch → 0 (eps guards 0/0)", _normalize_constant_batch),
        gradcheck_property(_normalize_gradcheck_cases),
    ),
    wrong_variants=(
        WrongVariant("normalize_population_std", "population std (ddof = 0) instead of the unbiased one",
                     "np.std's default ddof = 0 (the group version: one-covenant/grail#9)", normalize_population_std),
        WrongVariant("normalize_mask_ignored", "mean/std over padding entries too", "derivation",
                     normalize_mask_ignored),
        WrongVariant("normalize_without_eps", "no eps: a constant batch gives 0/0 = NaN",
                     "derivation (the group version: NVIDIA-NeMo/RL#4161)", normalize_without_eps),
    ),
    bad_inputs=_normalize_bad_inputs(),
    inputs=_normalize_inputs,
    doc="docs/formulas/normalize-advantages.md",
    proof="pgmath.proofs.batch_baseline",
    extra={"extremes": extremes.normalize_advantages},
)

FAMILY: tuple[Spec, ...] = (TD_ERRORS, GAE, LAMBDA_RETURNS, NORMALIZE_ADVANTAGES)
