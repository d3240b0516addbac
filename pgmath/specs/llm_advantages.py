"""Specs of the LLM advantages: group baselines (GRPO, Dr. GRPO, RLOO), token rewards, token GAE
and REINFORCE++'s batch-normalised returns.

    GRPO      A_{g,k} = (R_{g,k} − mean_k R_g) / (std_k R_g + ε)   (Bessel std, ε = 10⁻⁶)
    Dr. GRPO  A_{g,k} =  R_{g,k} − mean_k R_g
    RLOO      A_{g,k} =  R_{g,k} − (1/(K−1)) Σ_{j≠k} R_{g,j}
    rₜ = [t = last response token] · score − penaltyₜ
    token GAE: the core GAE over each response's tokens (gaps skipped), terminal at its last token
    REINFORCE++: Gₜ = rₜ + γ G_{t⁺} over the response tokens, whitened over the batch's tokens

Sources: Shao et al. (2024), DeepSeekMath §4.1.2; Liu et al. (2025), Dr. GRPO; Kool, van Hoof &
Welling (2019) and Ahmadian et al. (2024), RLOO; Ouyang et al. (2022) for token rewards and GAE
with a value head; Hu (2025), REINFORCE++.

The group specs use the harness signature ``fn(rewards [G, K]) -> [G, K]`` of
:func:`pgmath.testing.check_group_advantages` (GRPO binds ε = 10⁻⁶, its default).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch

from pgmath.advantages import gae_reference, normalize_advantages
from pgmath.llm.advantages import (
    batch_normalized_returns,
    group_advantages,
    group_advantages_reference,
    rloo_advantages,
    rloo_advantages_reference,
    token_gae,
    token_rewards,
)
from pgmath.specs import extremes
from pgmath.specs.llm_aggregate import random_token_mask, token_arrays, token_mask, token_zeros
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

__all__ = [
    "FAMILY",
    "GRPO_EPS",
    "batch_normalized_returns_reference",
    "dr_grpo_advantages",
    "dr_grpo_advantages_reference",
    "grpo_advantages",
    "grpo_advantages_reference",
    "token_gae_and_returns",
    "token_gae_reference",
    "token_rewards_reference",
]

F64 = torch.float64

#: ε of :func:`pgmath.llm.group_advantages` (and of verl; TRL uses 1e-4).
GRPO_EPS = 1e-6

# ---------------------------------------------------------------------------------------------
# group advantages: the harness signature fn(rewards [G, K]) -> [G, K]


def grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO: :func:`pgmath.llm.group_advantages` with std normalisation and ε = 10⁻⁶."""
    return group_advantages(rewards, normalize_std=True, eps=GRPO_EPS)


def grpo_advantages_reference(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO by loops over groups and responses (:func:`pgmath.llm.group_advantages_reference`)."""
    return group_advantages_reference(rewards, normalize_std=True, eps=GRPO_EPS)


def dr_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO: :func:`pgmath.llm.group_advantages` with the mean baseline only."""
    return group_advantages(rewards, normalize_std=False)


def dr_grpo_advantages_reference(rewards: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO by loops (:func:`pgmath.llm.group_advantages_reference`, no std)."""
    return group_advantages_reference(rewards, normalize_std=False)


def _grpo_formula(v: list[float]) -> list[float]:
    if len(set(v)) == 1:
        return [0.0] * len(v)
    mu, sd = statistics.fmean(v), statistics.stdev(v)
    return [(x - mu) / (sd + GRPO_EPS) for x in v]


def _dr_grpo_formula(v: list[float]) -> list[float]:
    return [0.0] * len(v) if len(set(v)) == 1 else [x - statistics.fmean(v) for x in v]


def _rloo_formula(v: list[float]) -> list[float]:
    if len(set(v)) == 1:
        return [0.0] * len(v)
    return [x - math.fsum(v[:k] + v[k + 1 :]) / (len(v) - 1) for k, x in enumerate(v)]


def _group_suite(ctx: VerifyContext) -> list[torch.Tensor]:
    """Binary and continuous groups, K = 2…6, constant groups, and rewards with a 10⁶ offset."""
    g = ctx.generator(60)
    out = [torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.1, 0.1, 0.1, 0.1]], dtype=F64, device=ctx.device),
           1e6 + torch.tensor([[0.0, 0.1, 0.3, 0.7], [3.0, -1.0, 0.5, 0.5]], dtype=F64, device=ctx.device)]
    for K in range(2, 7):
        out.append(torch.randn(5, K, dtype=F64, generator=g, device=ctx.device))
        out.append(torch.randint(0, 2, (6, K), generator=g, device=ctx.device).to(F64))
    return out


def _group_definition(formula: Callable[[list[float]], list[float]], per_std: bool = False) -> Callable:
    """Compare with ``formula`` applied to each group's Python floats; the allowed error is
    round-off relative to the rewards' magnitude, max|R| · 64ε (÷ (stdev + ε) when ``per_std``):
    the forward error of any stable algorithm, which the 10⁶ offsets make visible."""

    def run(impl: Callable, ctx: VerifyContext) -> Outcome:
        worst = 0.0  # max over groups of |err| / allowed
        for r in _group_suite(ctx):
            got = impl(r)
            for i, row in enumerate(r.tolist()):
                scale = max(abs(x) for x in row)
                if per_std and len(set(row)) > 1:
                    scale /= statistics.stdev(row) + GRPO_EPS
                want = torch.tensor(formula(row), dtype=F64, device=ctx.device)
                worst = max(worst, max_abs_error(got[i], want) / (1e-10 + 64 * 2.0**-52 * scale))
        return Outcome(worst <= 1.0, f"max |err| / allowed = {worst:.2g}", {"err_over_allowed": worst})

    return run


def _constant_group_exact_zero(impl: Callable, ctx: VerifyContext) -> Outcome:
    """mean(0.1, 0.1, 0.1) ≠ 0.1 in floating point: a constant group must still give exactly 0."""
    r = torch.tensor([[0.1, 0.1, 0.1], [1.0, 0.0, 1.0], [2.0, 2.0, 2.0]], dtype=F64, device=ctx.device)
    out = impl(r)
    worst = float(out[[0, 2]].abs().max()) if bool(torch.isfinite(out[[0, 2]]).all()) else math.inf
    ok = worst == 0.0 and bool((out[1] != 0).all())
    return Outcome(ok, f"max |A| on constant groups = {worst:.1e}", {"max_abs_constant": worst})


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


def group_one_pass_variance(rewards):
    """std from the one-pass E[R²] − E[R]² (catastrophic cancellation under a large offset)."""
    K = rewards.shape[1]
    var = ((rewards**2).mean(1, keepdim=True) - rewards.mean(1, keepdim=True) ** 2) * K / (K - 1)
    const = rewards.amax(1, keepdim=True) == rewards.amin(1, keepdim=True)
    adv = (rewards - rewards.mean(1, keepdim=True)) / (var.clamp(min=0).sqrt() + GRPO_EPS)
    return torch.where(const, torch.zeros_like(adv), adv)


def dr_grpo_std_left_in(rewards):
    """Dr. GRPO asked for, GRPO's std division still applied."""
    return group_advantages(rewards, normalize_std=True, eps=GRPO_EPS)


def rloo_baseline_includes_self(rewards):
    """RLOO with the plain group mean as baseline (the sample's own reward included)."""
    return rewards - rewards.mean(1, keepdim=True)


def rloo_others_divided_by_k(rewards):
    """The leave-one-out sum divided by K instead of K − 1."""
    K = rewards.shape[1]
    return rewards - (rewards.sum(1, keepdim=True) - rewards) / K


def _group_bad_inputs() -> tuple[BadInput, ...]:
    def nan(d):
        return torch.tensor([[1.0, math.nan]], dtype=F64, device=d)

    return (
        BadInput("K = 1 (a group of one)", lambda f, d: f(torch.ones(3, 1, dtype=F64, device=d)), "rewards"),
        BadInput("1-D rewards", lambda f, d: f(torch.zeros(4, dtype=F64, device=d)), "rewards"),
        BadInput("no groups", lambda f, d: f(torch.zeros(0, 3, dtype=F64, device=d)), "rewards"),
        BadInput("integer rewards", lambda f, d: f(torch.zeros(2, 3, dtype=torch.long, device=d)), "rewards"),
        BadInput("NaN reward", lambda f, d: f(nan(d)), "rewards"),
    )


def _group_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        G, K = d(st.integers(1, 4)), d(st.integers(2, 6))
        el = st.sampled_from([0.0, 1.0]) if d(st.booleans()) else st.integers(-50, 50).map(lambda i: i / 10)
        offset = d(st.sampled_from([0.0, 0.0, 1e6]))  # reward-model scores far from 0
        return Call((torch.as_tensor(d(arrays(np.float64, (G, K), elements=el))) + offset,))

    return draw()


_CONST = Property("constant_group_exact_zero", "a constant group (0.1, 0.1, 0.1) gives exactly 0",
                  _constant_group_exact_zero)

GROUP_ADVANTAGES = Spec(
    name="group_advantages",
    title="GRPO advantages",
    area="llm",
    formula="A_{g,k} = (R_{g,k} − mean_k R_g) / (std_k R_g + ε), Bessel std, ε = 10⁻⁶; 0 for a constant group",
    source="Shao et al. (2024), DeepSeekMath §4.1.2",
    function=grpo_advantages,
    reference=grpo_advantages_reference,
    implementations={"fast": grpo_advantages, "reference": grpo_advantages_reference},
    properties=(
        Property("definition", "== (R − mean)/(stdev + ε) per group (statistics module; 10⁶ offsets)",
                 _group_definition(_grpo_formula, per_std=True)),
        _CONST,
    ),
    wrong_variants=(
        WrongVariant("group_std_without_eps", "GRPO std of a constant group: division by zero (NaN)",
                     "no public report linked; NVIDIA-NeMo/RL#4161 is the near-zero-std version",
                     group_std_without_eps, options={"estimator": "grpo"}),
        WrongVariant("group_stats_over_batch", "GRPO mean/std over the batch instead of per group",
                     "XU-YIJIE/grpo-flat#2 (fixed)", group_stats_over_batch, options={"estimator": "grpo"}),
        WrongVariant("group_population_std", "population std (ddof = 0) instead of the unbiased one",
                     "np.std's ddof = 0 (one-covenant/grail#9)", group_population_std,
                     options={"estimator": "grpo"}),
        WrongVariant("group_one_pass_variance", "std from the one-pass E[R²] − E[R]² (cancellation)",
                     "verl-project/verl#6348 (vectorised GRPO, low-variance groups); NousResearch/atropos#481",
                     group_one_pass_variance, options={"estimator": "grpo"}),
    ),
    bad_inputs=_group_bad_inputs(),
    inputs=_group_inputs,
    doc="docs/llm/group_advantages.md",
    harness="check_group_advantages",
    tolerance=1e-7,  # the 10⁶ offsets of the generator cost ~10⁻⁹ of round-off in any algorithm
    extra={"extremes": extremes.group_advantages},
)

DR_GRPO_ADVANTAGES = Spec(
    name="group_advantages_mean",
    title="Dr. GRPO advantages",
    area="llm",
    formula="A_{g,k} = R_{g,k} − mean_k R_g  (= (K−1)/K · A_RLOO)",
    source="Liu et al. (2025), 'Understanding R1-Zero-like training' (Dr. GRPO)",
    function=dr_grpo_advantages,
    reference=dr_grpo_advantages_reference,
    implementations={"fast": dr_grpo_advantages, "reference": dr_grpo_advantages_reference},
    properties=(
        Property("definition", "== R − mean per group (statistics module)", _group_definition(_dr_grpo_formula)),
        _CONST,
    ),
    wrong_variants=(
        WrongVariant("dr_grpo_std_left_in", "normalize_std=False ignored: GRPO's std division still applied",
                     "derivation (the division Dr. GRPO removes, Liu et al. 2025 §3.1)", dr_grpo_std_left_in,
                     options={"estimator": "grpo", "normalize_std": False}),
    ),
    bad_inputs=_group_bad_inputs(),
    inputs=_group_inputs,
    doc="docs/llm/group_advantages.md",
    harness="check_group_advantages",
    tolerance=1e-8,  # round-off of 10⁶-offset rewards (the generator draws them)
)

RLOO_ADVANTAGES = Spec(
    name="rloo_advantages",
    title="RLOO advantages",
    area="llm",
    formula="A_{g,k} = R_{g,k} − (1/(K−1)) Σ_{j≠k} R_{g,j}",
    source="Kool, van Hoof & Welling (2019); Ahmadian et al. (2024)",
    function=rloo_advantages,
    reference=rloo_advantages_reference,
    implementations={"fast": rloo_advantages, "reference": rloo_advantages_reference},
    properties=(
        Property("definition", "== R minus the mean of the other K − 1 (math.fsum)", _group_definition(_rloo_formula)),
        _CONST,
    ),
    wrong_variants=(
        WrongVariant("rloo_baseline_includes_self", "RLOO baseline includes the sample's own reward",
                     "no public report linked", rloo_baseline_includes_self, options={"estimator": "rloo"}),
        WrongVariant("rloo_others_divided_by_k", "the sum of the other K − 1 rewards divided by K",
                     "derivation", rloo_others_divided_by_k, options={"estimator": "rloo"}),
    ),
    bad_inputs=_group_bad_inputs(),
    inputs=_group_inputs,
    doc="docs/llm/rloo_advantages.md",
    harness="check_group_advantages",
    tolerance=1e-8,  # round-off of 10⁶-offset rewards (the generator draws them)
    extra={"extremes": extremes.rloo_advantages},
)

# ---------------------------------------------------------------------------------------------
# token rewards


def token_rewards_reference(scores, mask, *, kl_penalty=None):
    """rₜ by a loop over the rows: the score at the last true mask entry, minus the penalty."""
    B, L = mask.shape
    r = torch.zeros(B, L, dtype=scores.dtype, device=scores.device)
    # over the rows b, then over t to find the last response token
    for b in range(B):
        last = max((t for t in range(L) if bool(mask[b, t])), default=None)
        if last is not None:
            r[b, last] = scores[b]
        for t in range(L):
            if kl_penalty is not None and bool(mask[b, t]):
                r[b, t] = r[b, t] - kl_penalty[b, t]
    return r


def _rewards_last_real_token(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Right-padded, left-padded (prompt first) and empty rows: the score on the last real token."""
    d = ctx.device
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool, device=d)
    scores = torch.tensor([1.0, 2.0, 3.0], dtype=F64, device=d)
    want = torch.zeros(3, 6, dtype=F64, device=d)
    want[0, 3], want[1, 4] = 1.0, 2.0
    pen = torch.full((3, 6), 0.5, dtype=F64, device=d)
    err = max(max_abs_error(impl(scores, mask), want),
              max_abs_error(impl(scores, mask, kl_penalty=pen), want - 0.5 * mask.to(F64)))
    return outcome_within(err, 0.0)


def _rewards_by_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    g = ctx.generator(61)
    err = 0.0
    for B, L in [(1, 1), (4, 7), (9, 12)]:
        m = random_token_mask(B, L, g, ctx.device, p=0.4)
        s = torch.randn(B, dtype=F64, generator=g, device=ctx.device)
        pen = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        for kw in ({}, {"kl_penalty": pen}):
            err = max(err, max_abs_error(impl(s, m, **kw), token_rewards_reference(s, m, **kw)))
    return outcome_within(err)


def reward_at_first_pad(scores, mask, *, kl_penalty=None):
    """The score on the token after the last response token (the first pad), clamped to L − 1."""
    m = mask.bool()
    L = m.shape[1]
    pos = torch.arange(L, device=m.device).expand_as(m)
    last = torch.where(m, pos, torch.full_like(pos, -1)).amax(1)
    end = torch.where(last + 1 < L, last + 1, last)
    r = torch.zeros(m.shape, dtype=scores.dtype, device=scores.device)
    has = last >= 0
    r[torch.arange(m.shape[0], device=m.device)[has], end[has]] = scores[has]
    if kl_penalty is not None:
        r = r - torch.where(m, kl_penalty, torch.zeros_like(kl_penalty))
    return r


def kl_penalty_not_masked(scores, mask, *, kl_penalty=None):
    """The per-token penalty subtracted on every position, observation tokens and pads too."""
    r = token_rewards(scores, mask)
    return r if kl_penalty is None else r - kl_penalty


def _rewards_bad_inputs() -> tuple[BadInput, ...]:
    def m(d):
        return torch.ones(2, 3, dtype=torch.bool, device=d)

    def s(d, n=2):
        return torch.ones(n, dtype=F64, device=d)

    return (
        BadInput("scores shape", lambda f, d: f(s(d, 3), m(d)), "scores"),
        BadInput("NaN score", lambda f, d: f(s(d) * math.nan, m(d)), "scores"),
        BadInput("1-D mask", lambda f, d: f(s(d), torch.ones(2, dtype=torch.bool, device=d)), "mask"),
        BadInput("penalty shape", lambda f, d: f(s(d), m(d), kl_penalty=torch.zeros(2, 4, dtype=F64, device=d)),
                 "kl_penalty"),
    )


def _rewards_inputs():
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        m, (pen,) = d(token_arrays(1))
        scores = d(arrays(np.float64, (m.shape[0],), elements=st.integers(-8, 8).map(lambda i: i / 4)))
        kw = {"kl_penalty": pen} if d(st.booleans()) else {}
        return Call((torch.as_tensor(scores), m), kw)

    return draw()


TOKEN_REWARDS = Spec(
    name="token_rewards",
    title="token_rewards",
    area="llm",
    formula="rₜ = [t = last response token] · score − penaltyₜ on response tokens, 0 elsewhere",
    source="Ouyang et al. (2022); Ziegler et al. (2019): the score at the end, −β·KL per token",
    function=token_rewards,
    reference=token_rewards_reference,
    implementations={"fast": token_rewards},
    properties=(
        Property("last_real_token", "right-/left-padded and empty rows: score on the last real token",
                 _rewards_last_real_token),
        Property("per_row_loop", "== per-row loop on random masks with gaps, with and without a penalty",
                 _rewards_by_loop),
    ),
    wrong_variants=(
        WrongVariant("reward_at_first_pad", "score on the first pad after the response (index = length)",
                     "huggingface/trl#3750 (PR #5338); deepspeedai/DeepSpeedExamples#672; wyf3/llm_related#37",
                     reward_at_first_pad),
        WrongVariant("kl_penalty_not_masked", "the KL penalty subtracted on observation tokens and pads too",
                     "THUDM/slime#1372; radixark/miles#1383", kl_penalty_not_masked),
    ),
    bad_inputs=_rewards_bad_inputs(),
    inputs=_rewards_inputs,
    doc="docs/llm/token_gae.md",
)

# ---------------------------------------------------------------------------------------------
# token GAE: (advantages, returns) stacked into one [2, B, L] tensor


def token_gae_and_returns(rewards, values, mask, *, gamma=1.0, lam=0.95, backend="auto"):
    """``torch.stack(token_gae(...))``: advantages and returns as one ``[2, B, L]`` tensor."""
    return torch.stack(token_gae(rewards, values, mask, gamma=gamma, lam=lam, backend=backend))


def token_gae_reference(rewards, values, mask, *, gamma=1.0, lam=0.95):
    """A per-response loop of the core :func:`pgmath.gae_reference`: each row's response tokens
    as one episode that terminates at its last token. Returns ``[2, B, L]``."""
    B, L = mask.shape
    out = torch.zeros(2, B, L, dtype=rewards.dtype, device=rewards.device)
    # over the responses; the core loop runs backward over each one's tokens
    for b in range(B):
        idx = [t for t in range(L) if bool(mask[b, t])]
        if not idx:
            continue
        r, v = rewards[b, idx], values[b, idx].to(rewards.dtype)
        nv = torch.cat([v[1:], torch.zeros_like(v[:1])])
        term = torch.zeros(len(idx), dtype=torch.bool, device=rewards.device)
        term[-1] = True
        adv = gae_reference(r, v, nv, term, torch.zeros_like(term), gamma=gamma, lam=lam)
        out[0, b, idx], out[1, b, idx] = adv, adv + v
    return out


def _gae_cases(ctx: VerifyContext, offset: int):
    g = ctx.generator(offset)
    for B, L in [(1, 1), (3, 6), (5, 11)]:
        m = random_token_mask(B, L, g, ctx.device, p=0.6)
        r = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        v = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        yield r, v, m


def _token_gae_by_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for r, v, m in _gae_cases(ctx, 62):
        for gamma, lam in [(1.0, 0.95), (0.97, 0.8), (0.5, 0.0), (1.0, 1.0)]:
            want = token_gae_reference(r, v, m, gamma=gamma, lam=lam)
            err = max(err, max_abs_error(impl(r, v, m, gamma=gamma, lam=lam), want))
    return outcome_within(err)


def _token_gae_by_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Âₜ = Σₗ (γλ)ˡ δ over the row's later response tokens, summed term by term; returns Â + V."""
    err = 0.0
    gamma, lam = 0.9, 0.7
    for r, v, m in _gae_cases(ctx, 63):
        got = impl(r, v, m, gamma=gamma, lam=lam)
        want = torch.zeros_like(got)
        for b in range(m.shape[0]):
            idx = [t for t in range(m.shape[1]) if bool(m[b, t])]
            vs = [float(v[b, t]) for t in idx] + [0.0]
            delta = [float(r[b, t]) + gamma * vs[i + 1] - vs[i] for i, t in enumerate(idx)]
            for i, t in enumerate(idx):
                want[0, b, t] = sum((gamma * lam) ** (j - i) * delta[j] for j in range(i, len(idx)))
                want[1, b, t] = want[0, b, t] + vs[i]
        err = max(err, max_abs_error(got, want))
    return outcome_within(err)


def _token_gae_lambda_one(impl: Callable, ctx: VerifyContext) -> Outcome:
    """γ = λ = 1: Âₜ = the reward-to-go over the response − Vₜ; hand example with a prompt and a pad."""
    d = ctx.device
    m = torch.tensor([[0, 0, 1, 1, 1, 0]], dtype=torch.bool, device=d)
    r = torch.tensor([[9.0, 9.0, -0.1, -0.2, 0.7, 9.0]], dtype=F64, device=d)
    v = torch.tensor([[7.0, 7.0, 0.5, 0.25, 0.125, 7.0]], dtype=F64, device=d)
    adv = torch.tensor([[0.0, 0.0, 0.4 - 0.5, 0.5 - 0.25, 0.7 - 0.125, 0.0]], dtype=F64, device=d)
    want = torch.stack([adv, torch.where(m, adv + v, torch.zeros_like(v))])
    return outcome_within(max_abs_error(impl(r, v, m, gamma=1.0, lam=1.0), want), 1e-14)


def token_gae_gaps_as_steps(rewards, values, mask, *, gamma=1.0, lam=0.95):
    """Gaps inside a response (e.g. tool-observation tokens) run as steps with r = V = 0."""
    m = mask.bool()
    spans = m.clone()
    for b in range(m.shape[0]):  # fill each row's span from its first to its last token
        idx = m[b].nonzero().flatten()
        if len(idx):
            spans[b, int(idx[0]) : int(idx[-1]) + 1] = True
    z = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    out = token_gae_reference(torch.where(m, rewards, z), torch.where(m, values.to(rewards.dtype), z), spans,
                              gamma=gamma, lam=lam)
    return torch.where(m, out, z)


def token_gae_end_bootstraps_from_pad(rewards, values, mask, *, gamma=1.0, lam=0.95):
    """The last response token is not terminal: δ bootstraps from the value at the next position."""
    m = mask.bool()
    L = m.shape[1]
    r = rewards.clone()
    for b in range(m.shape[0]):
        idx = m[b].nonzero().flatten()
        if len(idx) and int(idx[-1]) + 1 < L:
            r[b, int(idx[-1])] = r[b, int(idx[-1])] + gamma * values[b, int(idx[-1]) + 1]
    return token_gae_reference(r, values, m, gamma=gamma, lam=lam)


def _gae_bad_inputs() -> tuple[BadInput, ...]:
    z, m = token_zeros, token_mask

    def nan(d):
        x = z(d)
        x[0, 1] = math.nan
        return x

    return (
        BadInput("gamma > 1", lambda f, d: f(z(d), z(d), m(d), gamma=1.5, lam=0.9), "gamma"),
        BadInput("lam < 0", lambda f, d: f(z(d), z(d), m(d), gamma=1.0, lam=-0.1), "lam"),
        BadInput("values shape", lambda f, d: f(z(d), z(d, 2, 4), m(d), gamma=1.0, lam=0.9), "values"),
        BadInput("NaN reward on a response token", lambda f, d: f(nan(d), z(d), m(d), gamma=1.0, lam=0.9), "rewards"),
        BadInput("1-D mask", lambda f, d: f(z(d), z(d), m(d)[0], gamma=1.0, lam=0.9), "mask"),
    )


def _gae_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (r, v) = d(token_arrays(2))
        kw = {"gamma": d(st.sampled_from([0.0, 0.5, 0.9, 1.0])), "lam": d(st.sampled_from([0.0, 0.5, 0.95, 1.0]))}
        return Call((r, v, m), kw)

    return draw()



TOKEN_GAE = Spec(
    name="token_gae",
    title="token_gae",
    area="llm",
    formula="per response: δₜ = rₜ + γV_{t⁺} − Vₜ (V = 0 after the last token), Âₜ = δₜ + γλÂ_{t⁺}; returns Â + V",
    source="Ouyang et al. (2022); Schulman et al. (2015) on each response's tokens",
    function=token_gae_and_returns,
    reference=token_gae_reference,
    implementations=backends(token_gae_and_returns, ("reference",)),
    properties=(
        Property("per_response_loop", "== per-response loop of the core GAE (gaps skipped, float64)", _token_gae_by_loop),
        Property("definition", "Âₜ = Σ (γλ)ˡ δ over later response tokens, summed term by term", _token_gae_by_definition),
        Property("lambda_one", "γ = λ = 1: reward-to-go − V (hand example with prompt and pad)", _token_gae_lambda_one),
    ),
    wrong_variants=(
        WrongVariant("token_gae_gaps_as_steps", "gaps inside a response run as steps with r = V = 0",
                     "derivation (tool-observation gaps; the REINFORCE++ form of it is verl-project/verl#7278)",
                     token_gae_gaps_as_steps),
        WrongVariant("token_gae_end_bootstraps_from_pad", "the last response token bootstraps from the next position",
                     "derivation (the response end treated as a truncation)", token_gae_end_bootstraps_from_pad),
    ),
    bad_inputs=_gae_bad_inputs(),
    inputs=_gae_inputs,
    doc="docs/llm/token_gae.md",
    extra={"cpu_only": ("numba",)},
)

# ---------------------------------------------------------------------------------------------
# REINFORCE++: batch-normalised reward-to-go


def _raw_returns(rewards, m, gamma):
    """Gₜ by a backward loop over each row's response tokens (gaps skipped); 0 elsewhere."""
    G = torch.zeros_like(rewards)
    for b in range(m.shape[0]):
        acc = 0.0
        for t in reversed(range(m.shape[1])):  # backward in time, gaps skipped
            if bool(m[b, t]):
                acc = float(rewards[b, t]) + gamma * acc
                G[b, t] = acc
    return G


def batch_normalized_returns_reference(rewards, mask, *, gamma=1.0, eps=1e-8):
    """Gₜ by a backward loop over each row's response tokens (gaps skipped), then whitened over
    every response token of the batch (Bessel std, ``statistics``); 0 outside the mask."""
    m = mask.bool()
    G = _raw_returns(rewards, m, gamma)
    vals = G[m].tolist()
    mu, sd = statistics.fmean(vals), statistics.stdev(vals)
    return torch.where(m, (G - mu) / (sd + eps), torch.zeros_like(G))


def _bnr_by_loop(impl: Callable, ctx: VerifyContext) -> Outcome:
    g = ctx.generator(64)
    err = 0.0
    for B, L in [(1, 2), (4, 5), (6, 13)]:
        m = random_token_mask(B, L, g, ctx.device, p=0.6)
        m[0, :2] = True
        r = torch.randn(B, L, dtype=F64, generator=g, device=ctx.device)
        for gamma in (0.0, 0.9, 1.0):
            want = batch_normalized_returns_reference(r, m, gamma=gamma)
            err = max(err, max_abs_error(impl(r, m, gamma=gamma), want))
    return outcome_within(err)


def _bnr_gap_carries_return(impl: Callable, ctx: VerifyContext) -> Outcome:
    """verl-project/verl#6376's example plus a one-token row: G = (0.5, ·, 1 | 2) by hand (γ = ½);
    the gap is skipped, not a boundary; pads and gaps are exactly 0."""
    d = ctx.device
    r = torch.tensor([[0.0, 5.0, 1.0], [2.0, 9.0, 9.0]], dtype=F64, device=d)
    m = torch.tensor([[1, 0, 1], [1, 0, 0]], dtype=torch.bool, device=d)
    G = [0.5, 1.0, 2.0]
    mu, sd = statistics.fmean(G), statistics.stdev(G)
    a = [(x - mu) / (sd + 1e-8) for x in G]
    want = torch.tensor([[a[0], 0.0, a[1]], [a[2], 0.0, 0.0]], dtype=F64, device=d)
    return outcome_within(max_abs_error(impl(r, m, gamma=0.5), want))


def returns_reset_at_mask_gaps(rewards, mask, *, gamma=1.0, eps=1e-8):
    """The running return reset at every mask = 0, internal gaps (observations) included."""
    m = mask.bool()
    r = torch.where(m, rewards, torch.zeros_like(rewards))
    G = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):  # backward in time
        running = (r[:, t] + gamma * running) * m[:, t].to(r.dtype)
        G[:, t] = running
    return normalize_advantages(G, mask=m, eps=eps)


def whitening_pads_not_zeroed(rewards, mask, *, gamma=1.0, eps=1e-8):
    """Whitening applied to every position: the pads end at −μ/σ instead of 0."""
    m = mask.bool()
    G = _raw_returns(rewards, m, gamma)
    return (G - G[m].mean()) / (G[m].std() + eps)


def returns_rewards_outside_mask_counted(rewards, mask, *, gamma=1.0, eps=1e-8):
    """Rewards (e.g. a KL penalty) on observation tokens and pads flow into the return."""
    m = mask.bool()
    G = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):  # backward in time
        running = rewards[:, t] + torch.where(m[:, t], gamma, 1.0) * running
        G[:, t] = running
    return normalize_advantages(G, mask=m, eps=eps)


def _bnr_bad_inputs() -> tuple[BadInput, ...]:
    z, m = token_zeros, token_mask

    def one(d):
        x = torch.zeros(2, 3, dtype=torch.bool, device=d)
        x[0, 1] = True
        return x

    return (
        BadInput("gamma > 1", lambda f, d: f(z(d), m(d), gamma=1.5), "gamma"),
        BadInput("rewards shape", lambda f, d: f(z(d, 2, 4), m(d)), "rewards"),
        BadInput("integer rewards", lambda f, d: f(z(d).long(), m(d)), "rewards"),
        BadInput("one response token (no std)", lambda f, d: f(z(d), one(d)), "mask"),
    )


def _bnr_inputs():
    from hypothesis import strategies as st

    @st.composite
    def draw(d):
        m, (r,) = d(token_arrays(1, min_L=2))
        if int(m.sum()) < 2:
            m = m.clone()
            m.view(-1)[:2] = True
            r = torch.where(m, torch.nan_to_num(r), r)
        return Call((r, m), {"gamma": d(st.sampled_from([0.0, 0.5, 0.9, 1.0]))})

    return draw()


BATCH_NORMALIZED_RETURNS = Spec(
    name="batch_normalized_returns",
    title="REINFORCE++ returns",
    area="llm",
    formula="Gₜ = rₜ + γG_{t⁺} over response tokens (gaps skipped); Aₜ = (Gₜ − mean G)/(std G + ε) over the batch",
    source="Hu (2025), REINFORCE++ (arXiv 2501.03262)",
    function=batch_normalized_returns,
    reference=batch_normalized_returns_reference,
    implementations=backends(batch_normalized_returns),
    properties=(
        Property("definition", "== backward loop over response tokens, whitened (statistics), float64", _bnr_by_loop),
        Property("gap_carries_return", "a gap is skipped, not a boundary; pads are 0 (hand example)",
                 _bnr_gap_carries_return),
    ),
    wrong_variants=(
        WrongVariant("returns_reset_at_mask_gaps", "the reward-to-go reset at every mask = 0, internal gaps too",
                     "verl-project/verl#7278 (PR #7300); verl-project/verl#6376", returns_reset_at_mask_gaps),
        WrongVariant("whitening_pads_not_zeroed", "whitening leaves the pads at −μ/σ", "verl-project/verl#1527",
                     whitening_pads_not_zeroed),
        WrongVariant("returns_rewards_outside_mask_counted", "rewards on observation tokens/pads enter the return",
                     "THUDM/slime#1372; radixark/miles#1383 (the KL of observation tokens)",
                     returns_rewards_outside_mask_counted),
    ),
    bad_inputs=_bnr_bad_inputs(),
    inputs=_bnr_inputs,
    doc="docs/llm/batch_normalized_returns.md",
    extra={"cpu_only": ("numba",)},
)

FAMILY: tuple[Spec, ...] = (
    GROUP_ADVANTAGES, DR_GRPO_ADVANTAGES, RLOO_ADVANTAGES, TOKEN_REWARDS, TOKEN_GAE, BATCH_NORMALIZED_RETURNS,
)
