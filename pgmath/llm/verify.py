"""The ``llm`` suite of ``pgmath verify``: the token-level specs, then the exact sequence oracle.

Rows (each can fail):

* one row per property of every ``llm`` spec (:mod:`pgmath.specs.llm_logprobs`,
  :mod:`~pgmath.specs.llm_aggregate`, :mod:`~pgmath.specs.llm_advantages`,
  :mod:`~pgmath.specs.llm_losses`, :mod:`~pgmath.specs.llm_kl`) and a bad-input row per spec:
  the log-prob alignment (off-by-one), the aggregation weights, the group / RLOO advantages,
  token rewards, token GAE, REINFORCE++ returns, the token policy loss and the KL terms;
* RLOO unbiased — exact E[ĝ] = ∇J by enumerating groups; samples pass Hotelling's T²;
* GRPO mean baseline — exact E[ĝ] = (K−1)/K ∇J; samples are rejected against ∇J (power) and
  pass against (K−1)/K ∇J;
* GRPO std normalisation — exact E[ĝ] is not parallel to ∇J for continuous rewards (cosine
  shown); binary rewards, K = 3: exactly (2/√3) ∇J;
* KL as a loss term, k1 / k2 / k3 — exact E[∇Σₜkₜ] = 0 / ∇C_rev / ∇C_fwd (per-conditional
  KLs with prefixes from π); for L = 3 the gap to the sequence-level KL gradient is shown; samples
  pass against the exact value and (k2, k3) are rejected against the sequence-level KL gradient;
* k1 in the reward with reward-to-go — exact E = ∇KL(π‖π_ref); samples pass;
* audit (:func:`pgmath.llm.audit_loss`, EOS tree V = 3, L ≤ 2, K = 3, 2 prompts, 2 points):
  REINFORCE c_J = 1, GRPO's mean baseline c_J = (K−1)/K (both to 10⁻¹⁰, residual < 10⁻¹⁰), and the
  residual flags a loss that estimates none of the targets ((Σₜ log πₜ)²: residual > 5%).

False alarms: the oracle rows make 6 Hotelling tests of true hypotheses at α = 10⁻³ (family-wise
≤ 0.6% for a fresh seed); the generators are fixed, so the rows are deterministic. Sizes: 4000
samples (1000 with ``--quick``, which also uses sequences of length 2); ``--samples`` overrides.
"""

from __future__ import annotations

import json
import math
import pathlib

import torch

from pgmath.llm.advantages import group_advantages, rloo_advantages
from pgmath.llm.audit import audit_loss
from pgmath.llm.kl import token_kl
from pgmath.llm.oracle import TreePolicy
from pgmath.specs import SPECS, verify_rows
from pgmath.stats import MinDetectableBias, min_detectable_bias, unbiasedness_test
from pgmath.verification import Outcome, VerifyContext, VerifyRow

__all__ = [
    "ALPHA",
    "kl_placement_table",
    "rows",
    "verify_audit",
    "verify_grpo_mean_baseline",
    "verify_grpo_std_normalization",
    "verify_k1_in_reward",
    "verify_kl_as_loss",
    "verify_rloo_unbiased",
    "write_artifacts",
]

ALPHA = 1e-3
#: The power at which the unbiased rows state their minimum detectable bias.
POWER = 0.9


def _power_data(m: MinDetectableBias) -> dict:
    return {"along_gradient": m.along_gradient, "worst_direction": m.worst_direction,
            "power": m.power, "alpha": m.alpha, "n": m.n}
AREA = "llm"
F64 = torch.float64


def _cpu_gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------- oracle rows
def _oracle(ctx: VerifyContext, scale: float = 0.5):
    L = 2 if ctx.quick else 3
    o = TreePolicy(vocab=4, length=L, device=ctx.device)
    g = _cpu_gen(1234)  # the policy is fixed; ctx.seed moves the sampling only
    th, ref = o.init_params(g, scale), o.init_params(g, scale)
    R = torch.randn(1, o.N, dtype=F64, generator=g).to(ctx.device)
    return o, th.detach(), ref.detach(), R


def _n(ctx: VerifyContext) -> int:
    return ctx.samples or (1000 if ctx.quick else 4000)


def _group_samples(ctx, o, th, R, K, fn, offset, n=None):
    _, seqs = o.sample_group(th, n or _n(ctx), K, ctx.generator(offset))
    S = o.score_matrix(th)
    return torch.einsum("gk,gk...->g...", fn(R[0][seqs]) / K, S[seqs])


def verify_rloo_unbiased(ctx: VerifyContext) -> Outcome:
    o, th, _, R = _oracle(ctx)
    gJ = o.grad(lambda t: o.objective(t, R), th)
    K = 4 if ctx.quick else 3
    exact = o.expected_group_gradient(th, R, K, rloo_advantages)
    e = _rel(exact, gJ)
    # 20 000 groups by default: the row then detects a 5 % bias along ∇J (power 0.9, α = 10⁻³)
    n = ctx.samples or (1000 if ctx.quick else 20_000)
    samples = _group_samples(ctx, o, th, R, K, rloo_advantages, 10, n)
    test = unbiasedness_test(samples, gJ, alpha=ALPHA)
    mdb = min_detectable_bias(samples, gJ, alpha=ALPHA, power=POWER)
    return Outcome(e < 1e-10 and test.passed,
                   f"exact rel. err {e:.0e}; sampled p = {test.p_value:.2g}; {mdb.summary()}",
                   {"exact_rel_err": e, "p_value": test.p_value, "K": K,
                    "min_detectable_bias": _power_data(mdb)})


def verify_grpo_mean_baseline(ctx: VerifyContext) -> Outcome:
    o, th, _, R = _oracle(ctx)
    K = 4 if o.L == 2 else 3  # Nᴷ groups enumerated: 16⁴ or 64³
    gJ = o.grad(lambda t: o.objective(t, R), th)
    fn = lambda r: group_advantages(r, normalize_std=False)  # noqa: E731
    exact = o.expected_group_gradient(th, R, K, fn)
    e = _rel(exact, (K - 1) / K * gJ)
    s = _group_samples(ctx, o, th, R, K, fn, 11)
    vs_true = unbiasedness_test(s, gJ, alpha=ALPHA)
    vs_shrunk = unbiasedness_test(s, (K - 1) / K * gJ, alpha=ALPHA)
    ok = e < 1e-10 and not vs_true.passed and vs_shrunk.passed
    return Outcome(ok, f"E = {K - 1}/{K}·∇J (err {e:.0e}); p vs ∇J = {vs_true.p_value:.1g}, "
                   f"vs {K - 1}/{K}·∇J = {vs_shrunk.p_value:.2g}",
                   {"exact_rel_err": e, "p_vs_gradJ": vs_true.p_value, "p_vs_shrunk": vs_shrunk.p_value, "K": K})


def verify_grpo_std_normalization(ctx: VerifyContext) -> Outcome:
    o, th, _, R = _oracle(ctx)
    if o.L == 3:  # enumerate groups on the length-2 tree (N³ = 4096) to keep the row fast
        o = TreePolicy(vocab=4, length=2, device=ctx.device)
        g = _cpu_gen(99)
        th = o.init_params(g).detach()
        R = torch.randn(1, o.N, dtype=F64, generator=g).to(ctx.device)
    K = 3
    gJ = o.grad(lambda t: o.objective(t, R), th)
    std = o.expected_group_gradient(th, R, K, lambda r: group_advantages(r, eps=0.0))
    cos = float((std * gJ).sum() / std.norm() / gJ.norm())
    Rb = (R > 0.3).to(F64)
    gJb = o.grad(lambda t: o.objective(t, Rb), th)
    stdb = o.expected_group_gradient(th, Rb, K, lambda r: group_advantages(r, eps=0.0))
    eb = _rel(stdb, 2 / math.sqrt(3) * gJb)
    ok = cos < 0.999 and eb < 1e-10
    return Outcome(ok, f"cos(E ĝ, ∇J) = {cos:.4f} (continuous R); binary K=3: E = (2/√3)∇J (err {eb:.0e})",
                   {"cosine_continuous": cos, "binary_k3_rel_err": eb})


def kl_placement_table(o: TreePolicy, th: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Relative gaps between the exact expected gradients of each KL placement and the targets."""
    gk = {e: o.grad(lambda t, e=e: o.kl_loss_surrogate(t, ref, e), th) for e in ("k1", "k2", "k3")}
    c_rev = o.grad(lambda t: o.conditional_kl(t, ref, "reverse"), th)
    c_fwd = o.grad(lambda t: o.conditional_kl(t, ref, "forward"), th)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    kl_fwd = o.grad(lambda t: o.kl_forward(t, ref), th)
    rtg = o.grad(lambda t: o.k1_reward_surrogate(t, ref, "reward-to-go"), th)
    imm = o.grad(lambda t: o.k1_reward_surrogate(t, ref, "immediate"), th)
    return {
        "k1_loss_norm_over_kl_grad": float(gk["k1"].norm() / kl_rev.norm()),
        "k2_loss_vs_cond_rev": _rel(gk["k2"], c_rev),
        "k2_loss_vs_seq_kl_rev": _rel(gk["k2"], kl_rev),
        "k3_loss_vs_cond_fwd": _rel(gk["k3"], c_fwd),
        "k3_loss_vs_seq_kl_fwd": _rel(gk["k3"], kl_fwd),
        "k3_loss_vs_seq_kl_rev": _rel(gk["k3"], kl_rev),
        "k1_reward_to_go_vs_seq_kl_rev": _rel(rtg, kl_rev),
        "k1_immediate_vs_k2_loss": _rel(imm, gk["k2"]),
    }


def _kl_samples(ctx, o, th, ref, est, offset):
    prompts, seqs = o.sample(th, _n(ctx), ctx.generator(offset))
    ref_tok = o.token_log_probs(ref).detach()
    ones = torch.ones(prompts.shape[0], o.L, dtype=torch.bool, device=o.device)
    return o.per_sample_grads(th, lambda lp, p, s: token_kl(lp, ref_tok[p, s], ones, est).sum(-1), prompts, seqs)


def verify_kl_as_loss(est: str):
    """The row of ``est`` as a loss term: its exact expected gradient by enumeration, and samples."""

    def fn(ctx: VerifyContext) -> Outcome:
        o, th, ref, _ = _oracle(ctx)
        tab = kl_placement_table(o, th, ref)
        s = _kl_samples(ctx, o, th, ref, est, 20 + int(est[1]))
        kl_rev = o.grad(lambda t: o.kl(t, ref), th)
        if est == "k1":
            exact_err = tab["k1_loss_norm_over_kl_grad"]
            t = unbiasedness_test(s, torch.zeros_like(kl_rev), alpha=ALPHA)
            ok = exact_err < 1e-12 and t.passed
            return Outcome(ok, f"E ∇Σk1 = 0 (‖·‖/‖∇KL‖ = {exact_err:.0e}); sampled p = {t.p_value:.2g}",
                           {**tab, "p_value": t.p_value})
        if est == "k2":
            exact = o.grad(lambda t: o.conditional_kl(t, ref, "reverse"), th)
            wrong, gap, err = kl_rev, tab["k2_loss_vs_seq_kl_rev"], tab["k2_loss_vs_cond_rev"]
            label = "∇KL(π‖ref)"
        else:
            exact = o.grad(lambda t: o.conditional_kl(t, ref, "forward"), th)
            wrong = o.grad(lambda t: o.kl_forward(t, ref), th)
            gap, err, label = tab["k3_loss_vs_seq_kl_fwd"], tab["k3_loss_vs_cond_fwd"], "∇KL(ref‖π)"
        t_ok = unbiasedness_test(s, exact, alpha=ALPHA)
        t_wrong = unbiasedness_test(s, wrong, alpha=ALPHA)
        ok = err < 1e-12 and gap > 0.02 and t_ok.passed and not t_wrong.passed
        return Outcome(ok, f"= per-conditional (err {err:.0e}); off {label} by {100 * gap:.0f}%; "
                       f"p = {t_ok.p_value:.2g} / {t_wrong.p_value:.1g}",
                       {**tab, "p_exact": t_ok.p_value, "p_sequence_kl": t_wrong.p_value})

    fn.__name__ = f"verify_kl_as_loss_{est}"
    return fn


def verify_k1_in_reward(ctx: VerifyContext) -> Outcome:
    o, th, ref, _ = _oracle(ctx)
    tab = kl_placement_table(o, th, ref)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    prompts, seqs = o.sample(th, _n(ctx), ctx.generator(30))
    ref_tok = o.token_log_probs(ref).detach()

    def rtg(lp, p, s):
        ell = (lp - ref_tok[p, s]).detach()
        return (lp * ell.flip(-1).cumsum(-1).flip(-1)).sum(-1)

    samples = o.per_sample_grads(th, rtg, prompts, seqs)
    t = unbiasedness_test(samples, kl_rev, alpha=ALPHA)
    mdb = min_detectable_bias(samples, kl_rev, alpha=ALPHA, power=POWER)
    err = tab["k1_reward_to_go_vs_seq_kl_rev"]
    return Outcome(err < 1e-12 and t.passed,
                   f"E = ∇KL(π‖ref) (err {err:.0e}); sampled p = {t.p_value:.2g}; {mdb.summary()}",
                   {**tab, "p_value": t.p_value, "min_detectable_bias": _power_data(mdb)})


_AUDIT_SIZES = {"vocab": 3, "length": 2, "group_size": 3, "prompts": 2, "points": 2, "exchangeable": True}


def _audit_reinforce(b) -> torch.Tensor:
    return -(b.rewards.unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size


def _audit_grpo_mean(b) -> torch.Tensor:
    a = group_advantages(b.rewards.unsqueeze(0), normalize_std=False)[0]
    return -(a.unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size


def _audit_squared(b) -> torch.Tensor:
    return ((b.log_probs * b.mask).sum(1) ** 2).sum() / b.group_size


def verify_audit(which: str):
    """The audit row ``which``: "reinforce" (c_J = 1), "grpo" (c_J = (K−1)/K) or "residual"."""

    def fn(ctx: VerifyContext) -> Outcome:
        loss = {"reinforce": _audit_reinforce, "grpo": _audit_grpo_mean, "residual": _audit_squared}[which]
        a = audit_loss(loss, seed=ctx.seed, **_AUDIT_SIZES)
        K = _AUDIT_SIZES["group_size"]
        data = {"coefficients": a.coefficients, "residual": a.residual}
        if which == "residual":
            ok = a.residual > 0.05 and not a.exact
            return Outcome(ok, f"(Σ log π)²: residual {a.residual:.2g} (> 0.05 flags a non-estimator)", data)
        want = 1.0 if which == "reinforce" else (K - 1) / K
        c = a.coefficients["J"]
        if c is None:  # varies between points (or dropped): certainly not the fixed multiple
            return Outcome(False, f"c_J varies between points; residual {a.residual:.2g}", data)
        err = abs(c - want)
        ok = err < 1e-10 and a.exact and a.residual < 1e-10
        return Outcome(ok, f"c_J = {c:.12g} (want {want:.6g}, err {err:.0e}); residual {a.residual:.0e}", data)

    fn.__name__ = f"verify_audit_{which}"
    return fn


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """The rows of the ``llm`` specs, then the oracle rows."""
    C = VerifyRow
    return [
        *verify_rows(SPECS, AREA),
        C(AREA, "RLOO unbiased", "exact E over all groups = ∇J; Hotelling T²", verify_rloo_unbiased),
        C(AREA, "GRPO mean baseline", "exact E = (K−1)/K ∇J; T² rejects ∇J (power)", verify_grpo_mean_baseline),
        C(AREA, "GRPO std normalization", "exact E not ∥ ∇J (continuous R); binary K=3: (2/√3)∇J",
          verify_grpo_std_normalization),
        C(AREA, "KL-as-loss k1", "exact E[∇Σk1] = 0; T²", verify_kl_as_loss("k1")),
        C(AREA, "KL-as-loss k2", "exact = ∇ per-conditional KL(π‖ref) ≠ ∇ sequence KL; T²", verify_kl_as_loss("k2")),
        C(AREA, "KL-as-loss k3", "exact = ∇ per-conditional KL(ref‖π) ≠ ∇ sequence KL(ref‖π); T²",
          verify_kl_as_loss("k3")),
        C(AREA, "KL k1 in reward", "reward-to-go score function: exact = ∇KL(π‖ref); T²", verify_k1_in_reward),
        C(AREA, "audit: REINFORCE", "audit_loss: c_J = 1, residual 0 (exact enumeration)", verify_audit("reinforce")),
        C(AREA, "audit: GRPO mean baseline", "audit_loss: c_J = (K−1)/K", verify_audit("grpo")),
        C(AREA, "audit: residual", "audit_loss flags a loss that estimates no target", verify_audit("residual")),
    ]


def write_artifacts(ctx: VerifyContext, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """``llm_kl_placement.json``: the exact KL-placement gaps for L = 1, 2, 3."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for L in (1, 2, 3):
        o = TreePolicy(vocab=4, length=L)
        g = _cpu_gen(1234)
        th, ref = o.init_params(g, 0.5).detach(), o.init_params(g, 0.5).detach()
        result[f"L={L}"] = kl_placement_table(o, th, ref)
    path = out_dir / "llm_kl_placement.json"
    path.write_text(json.dumps(result, indent=1))
    return [path]
