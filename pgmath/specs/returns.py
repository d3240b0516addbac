"""Specs of the generic reverse scan and the discounted return.

    yₜ = xₜ + cₜ yₜ₊₁,  y_T = 0                                  (discounted_cumsum)
    Gₜ = rₜ + γ Gₜ₊₁ inside an episode; rₜ if termₜ; rₜ + γ V(sₜ₊₁) if truncₜ or t = T−1

Sources: Sutton & Barto (2nd ed.), eq. 3.9; Pardo et al. (2018) for bootstrapping at truncation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from pgmath.returns import discounted_returns, discounted_returns_reference
from pgmath.scan import discounted_cumsum, discounted_cumsum_reference
from pgmath.specs.recursions import rollout_inputs, rollout_suite
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
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY"]

F64 = torch.float64



# ---------------------------------------------------------------------------------------------
# the generic scan


def _scan_by_expansion(impl: Callable, ctx: VerifyContext) -> Outcome:
    """yₜ = Σₖ₌ₜ (Πⱼ₌ₜ^{k−1} cⱼ) xₖ, summed directly, on per-step discounts with zeros."""
    g = ctx.generator(30)
    err = 0.0
    for T, B in [(1, 3), (9, 2), (40, 1)]:
        x = torch.randn(T, B, dtype=F64, device=ctx.device, generator=g)
        c = torch.rand(T, B, dtype=F64, device=ctx.device, generator=g)
        c = torch.where(torch.rand(T, B, device=ctx.device, generator=g) < 0.2, torch.zeros_like(c), c)
        y = impl(x, c)
        for t in range(T):
            want = torch.zeros(B, dtype=F64, device=ctx.device)
            prod = torch.ones(B, dtype=F64, device=ctx.device)
            for k in range(t, T):
                want = want + prod * x[k]
                prod = prod * c[k]
            err = max(err, max_abs_error(y[t], want))
    return outcome_within(err)


def _scan_long(impl: Callable, ctx: VerifyContext) -> Outcome:
    """T = 50 000, c = 0.999 (no rescaling, so nothing overflows): == the reference loop."""
    g = ctx.generator(31)
    T = 10_000 if ctx.quick else 50_000
    x = torch.randn(T, 2, dtype=F64, device=ctx.device, generator=g)
    c = torch.full_like(x, 0.999)
    return outcome_within(max_abs_error(impl(x, c), discounted_cumsum_reference(x, c)), 1e-9)


def scan_forward_in_time(x, discounts):
    """yₜ = xₜ + cₜ yₜ₋₁: the recursion run forwards (a cumsum from the start)."""
    return discounted_cumsum_reference(x.flip(0), discounts.flip(0)).flip(0)


def scan_discount_applied_after(x, discounts):
    """yₜ = cₜ (xₜ + yₜ₊₁): the discount multiplies the current term too."""
    return discounted_cumsum_reference(discounts * x, discounts)


def _scan_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    def build(xc):
        x, c = xc
        return Call((torch.as_tensor(x), torch.as_tensor(c)))

    shape = st.tuples(st.integers(1, 12), st.integers(1, 3))
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float64, s, elements=st.integers(-40, 40).map(lambda i: i / 4)),
        arrays(np.float64, s, elements=st.sampled_from([0.0, 0.5, 0.9, 1.0])),
    )).map(build)


def _scan_bad_inputs() -> tuple[BadInput, ...]:
    def z(d):
        return torch.zeros(4, 2, dtype=F64, device=d)

    return (
        BadInput("discounts shape", lambda f, d: f(z(d), z(d)[:, :1]), "discounts"),
        BadInput("integer x", lambda f, d: f(z(d).long(), z(d)), "x"),
        BadInput("NaN discount", lambda f, d: f(z(d), z(d) + float("nan")), "discounts"),
    )


DISCOUNTED_CUMSUM = Spec(
    name="discounted_cumsum",
    title="reverse scan yₜ = xₜ + cₜyₜ₊₁",
    area="core",
    formula="yₜ = xₜ + cₜ yₜ₊₁, y_T = 0  ⇔  yₜ = Σₖ₌ₜ (Πⱼ₌ₜ^{k−1} cⱼ) xₖ",
    source="the linear recurrence under every return and advantage (Schulman et al. 2015, eq. 16)",
    function=discounted_cumsum,
    reference=discounted_cumsum_reference,
    implementations={**backends(discounted_cumsum), "reference": discounted_cumsum_reference},
    properties=(
        Property("expansion", "== Σₖ (Π c) xₖ summed directly", _scan_by_expansion),
        Property("long_sequence", "T = 50 000, c = 0.999 == reference loop", _scan_long),
    ),
    wrong_variants=(
        WrongVariant("scan_forward_in_time", "the recursion run forwards in time", "derivation", scan_forward_in_time),
        WrongVariant("scan_discount_applied_after", "yₜ = cₜ(xₜ + yₜ₊₁)", "derivation", scan_discount_applied_after),
    ),
    bad_inputs=_scan_bad_inputs(),
    inputs=_scan_inputs,
    doc="docs/formulas/discounted-returns.md",
    extra={"cpu_only": ("numba",)},
)

# ---------------------------------------------------------------------------------------------
# discounted returns


def _returns_vs_reference(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for ro in rollout_suite(ctx, 5):
        for gamma in (0.0, 0.5, 0.99, 1.0):
            for nv in (None, ro.next_values):
                ref = discounted_returns_reference(ro.rewards, ro.terminated, ro.truncated, gamma=gamma, next_values=nv)
                got = impl(ro.rewards, ro.terminated, ro.truncated, gamma=gamma, next_values=nv)
                err = max(err, max_abs_error(got, ref))
    return outcome_within(err)


def _returns_by_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Gₜ = Σₖ γᵏ⁻ᵗ rₖ over the rest of the episode (+ γ^{e+1−t} V at a cut), by direct summation."""
    g = ctx.generator(6)
    err = 0.0
    T = 40
    r = torch.randn(T, dtype=F64, device=ctx.device, generator=g)
    nv = torch.randn(T, dtype=F64, device=ctx.device, generator=g)
    term = torch.zeros(T, dtype=torch.bool, device=ctx.device)
    trunc = torch.zeros_like(term)
    term[9], trunc[24] = True, True  # episodes [0, 9], [10, 24] (cut), [25, 39] (rollout end)
    ends = {**{t: (9, False) for t in range(10)}, **{t: (24, True) for t in range(10, 25)},
            **{t: (39, True) for t in range(25, 40)}}
    for gamma in (0.0, 0.9, 1.0):
        G = impl(r, term, trunc, gamma=gamma, next_values=nv)
        for t in range(T):
            e, boot = ends[t]
            want = sum(gamma ** (k - t) * float(r[k]) for k in range(t, e + 1))
            if boot:
                want += gamma ** (e + 1 - t) * float(nv[e])
            err = max(err, abs(float(G[t]) - want))
    return outcome_within(err)


def _cut(rewards, terminated, truncated):
    term, trunc = terminated.bool(), truncated.bool()
    last = torch.zeros_like(term)
    last[-1] = True
    return term, trunc, last


def _returns_scan(rewards, cut, boot, gamma, next_values):
    x = rewards + gamma * boot.to(rewards.dtype) * next_values if next_values is not None else rewards
    return discounted_cumsum_reference(x, gamma * (~cut).to(rewards.dtype))


def returns_ignore_episode_ends(rewards, terminated, truncated, *, gamma, next_values=None):
    """One discounted cumsum over the whole rollout: returns flow across episode boundaries."""
    term, _, last = _cut(rewards, terminated, truncated)
    return _returns_scan(rewards, last, last & ~term, gamma, next_values)


def returns_no_truncation_bootstrap(rewards, terminated, truncated, *, gamma, next_values=None):
    """A truncated episode is cut with 0 instead of γ V(final observation)."""
    term, trunc, last = _cut(rewards, terminated, truncated)
    return _returns_scan(rewards, term | trunc | last, last & ~term & ~trunc, gamma, next_values)


def returns_no_end_bootstrap(rewards, terminated, truncated, *, gamma, next_values=None):
    """The end of the rollout is treated as terminal (V of the observation after it dropped)."""
    term, trunc, last = _cut(rewards, terminated, truncated)
    trunc = trunc & ~last
    return _returns_scan(rewards, term | trunc | last, trunc & ~term, gamma, next_values)


def returns_done_mask_wrong_step(rewards, terminated, truncated, *, gamma, next_values=None):
    """Episode ends read one step late: Gₜ = rₜ + γ (1 − doneₜ₊₁) Gₜ₊₁."""
    term, trunc, last = _cut(rewards, terminated, truncated)
    done = term | trunc
    cut = torch.cat([done[1:], done[-1:]], 0) | last
    return _returns_scan(rewards, cut, last & ~term, gamma, next_values)


def returns_off_by_one(rewards, terminated, truncated, *, gamma, next_values=None):
    """Gₜ₊₁ stored at t: the returns read one step late (the last one repeated)."""
    G = discounted_returns_reference(rewards, terminated, truncated, gamma=gamma, next_values=next_values)
    return torch.cat([G[1:], G[-1:]])


def _returns_bad_inputs() -> tuple[BadInput, ...]:
    def z(d):
        return torch.zeros(5, 2, dtype=F64, device=d)

    def f0(d):
        return torch.zeros(5, 2, dtype=torch.bool, device=d)

    return (
        BadInput("broadcast flags", lambda f, d: f(z(d), f0(d)[:, :1], f0(d), gamma=0.9), "terminated"),
        BadInput("gamma NaN", lambda f, d: f(z(d), f0(d), f0(d), gamma=float("nan")), "gamma"),
        BadInput("NaN reward", lambda f, d: f(z(d) + float("nan"), f0(d), f0(d), gamma=0.9), "rewards"),
        BadInput("next_values shape", lambda f, d: f(z(d), f0(d), f0(d), gamma=0.9, next_values=z(d)[0]), "next_values"),
    )


_TRUNC = (
    "SB3 before the timeout fix (DLR-RM/stable-baselines3#633, #651); CleanRL ppo*.py "
    "(vwxyzjn/cleanrl#198, #457); jsboige/CoursIA#7821"
)

DISCOUNTED_RETURNS = Spec(
    name="discounted_returns",
    title="discounted return Gₜ",
    area="core",
    formula="Gₜ = rₜ + γGₜ₊₁ in an episode; rₜ if termₜ; rₜ + γV(sₜ₊₁) if truncₜ or t = T−1",
    source="Sutton & Barto (2nd ed.), eq. 3.9; Pardo et al. (2018) for truncation",
    function=discounted_returns,
    reference=discounted_returns_reference,
    implementations={**backends(discounted_returns), "reference": discounted_returns_reference},
    properties=(
        Property("fast_equals_reference", "fast scan == reference loop", _returns_vs_reference),
        Property("definition", "== Σ γᵏ rₜ₊ₖ (+ bootstrap) summed directly", _returns_by_definition),
    ),
    wrong_variants=(
        WrongVariant("returns_ignore_episode_ends", "one discounted cumsum over the rollout, across episodes",
                     "no public report linked; derivation", returns_ignore_episode_ends),
        WrongVariant("returns_no_truncation_bootstrap", "truncated episode cut with 0 instead of γV(final obs)",
                     _TRUNC, returns_no_truncation_bootstrap),
        WrongVariant("returns_no_end_bootstrap", "rollout end treated as terminal",
                     "truncated LM responses not bootstrapped (huggingface/trl#1536)", returns_no_end_bootstrap),
        WrongVariant("returns_done_mask_wrong_step", "episode ends read one step late",
                     "anthonytorlucci/rlevo#342", returns_done_mask_wrong_step),
        WrongVariant("returns_off_by_one", "returns one step late: Gₜ₊₁ used for Gₜ",
                     "derivation (the off-by-one return of docs/estimators/off_by_one_return.md)",
                     returns_off_by_one),
    ),
    bad_inputs=_returns_bad_inputs(),
    inputs=functools.partial(rollout_inputs, values=False, lam=False, next_values="keyword"),
    doc="docs/formulas/discounted-returns.md",
    proof="pgmath.proofs.returns",
    harness="check_returns",
    extra={"cpu_only": ("numba",)},
)

FAMILY: tuple[Spec, ...] = (DISCOUNTED_CUMSUM, DISCOUNTED_RETURNS)
