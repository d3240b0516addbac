"""The ``llm`` rows of ``pgmath verify``: token-level objectives and the exact sequence oracle.

Rows (each can fail):

1. token_log_probs off-by-one — the fast function equals an explicit prefix-by-prefix loop on a
   causal model, and the unshifted read (the classic bug) does not.
2. token_log_probs fast == reference loop (float64, random masks).
3. aggregation weights — each mode's weight on a token of a length-1 and a length-4 response
   equals its formula; the loss is unchanged by padding width and by a micro-batch split with
   global denominators.
4. group / RLOO advantages fast == reference loops; K = 1 raises in both.
5. token GAE == per-response loop; token policy loss == per-token loop (clip-higher, dual clip).
6. RLOO unbiased — exact E[ĝ] = ∇J by enumerating groups; samples pass Hotelling's T².
7. GRPO mean baseline — exact E[ĝ] = (K−1)/K ∇J; samples are rejected against ∇J (power) and
   pass against (K−1)/K ∇J.
8. GRPO std normalisation — exact E[ĝ] is not parallel to ∇J for continuous rewards (cosine
   shown); binary rewards, K = 3: exactly (2/√3) ∇J.
9.–11. KL as a loss term, k1 / k2 / k3 — exact E[∇Σₜkₜ] = 0 / ∇C_rev / ∇C_fwd (per-conditional
   KLs with prefixes from π); for L = 3 the gap to the sequence-level KL gradient is shown; samples
   pass against the exact value and (k2, k3) are rejected against the sequence-level KL gradient.
12. k1 in the reward with reward-to-go — exact E = ∇KL(π‖π_ref); samples pass.

False alarms: rows 6, 7, 9–12 make 6 Hotelling tests of true hypotheses at α = 10⁻³ (family-wise
≤ 0.6% for a fresh seed); the generators are fixed, so the rows are deterministic. Sizes: 4000
samples (1000 with ``--quick``, which also uses sequences of length 2); ``--samples`` overrides.
"""

from __future__ import annotations

import json
import math
import pathlib

import torch

from pgmath.estimators.stats import check_unbiased
from pgmath.llm.advantages import (
    group_advantages,
    group_advantages_reference,
    rloo_advantages,
    rloo_advantages_reference,
    token_gae,
)
from pgmath.llm.aggregate import AGGREGATION_MODES, aggregate_token_loss, aggregation_weights
from pgmath.llm.kl import token_kl
from pgmath.llm.logprobs import token_log_probs, token_log_probs_reference
from pgmath.llm.losses import token_policy_loss
from pgmath.llm.oracle import TreePolicy
from pgmath.verification import Check, Outcome, VerifyContext

__all__ = ["ALPHA", "checks", "kl_placement_table", "write_artifacts"]

ALPHA = 1e-3
AREA = "llm"
F64 = torch.float64


def _cpu_gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------- exact function rows
def _off_by_one(ctx: VerifyContext) -> Outcome:
    g = _cpu_gen(ctx.seed)
    V, B, L = 6, 4, 7
    emb = torch.randn(V, V, dtype=F64, generator=g).to(ctx.device)

    def model(tok):  # a causal map: position t sees tokens[≤t]
        steps = torch.arange(1, tok.shape[1] + 1, dtype=F64, device=ctx.device).view(1, -1, 1)
        return emb[tok].cumsum(1) / steps

    tokens = torch.randint(0, V, (B, L), generator=g).to(ctx.device)
    mask = torch.ones(B, L, dtype=torch.bool, device=ctx.device)
    mask[:, 0] = False
    expected = torch.zeros(B, L, dtype=F64, device=ctx.device)
    for t in range(1, L):  # the definition, prefix by prefix
        expected[:, t] = torch.log_softmax(model(tokens[:, :t])[:, -1], -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
    err = float((token_log_probs(model(tokens), tokens, mask) - expected).abs().max())
    wrong = torch.log_softmax(model(tokens), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    gap = float((wrong - expected)[mask].abs().max())
    return Outcome(err < 1e-12 and gap > 0.1, f"max |err| = {err:.1e}; unshifted off by {gap:.2f}",
                   {"max_abs_err": err, "unshifted_gap": gap})


def _logprob_reference(ctx: VerifyContext) -> Outcome:
    g = _cpu_gen(ctx.seed + 1)
    worst = 0.0
    for _ in range(5 if ctx.quick else 20):
        B, L, V = (int(x) for x in torch.randint(1, 8, (3,), generator=g))
        logits = (3 * torch.randn(B, L, V, dtype=F64, generator=g)).to(ctx.device)
        tokens = torch.randint(0, V, (B, L), generator=g).to(ctx.device)
        mask = (torch.rand(B, L, generator=g) < 0.7).to(ctx.device)
        mask[:, 0] = False
        d = (token_log_probs(logits, tokens, mask) - token_log_probs_reference(logits, tokens, mask)).abs().max()
        worst = max(worst, float(d))
    return Outcome(worst < 1e-12, f"max |fast − loop| = {worst:.1e}", {"max_abs_err": worst})


def _aggregation(ctx: VerifyContext) -> Outcome:
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool, device=ctx.device)
    C = 8.0
    formula = {"token-mean": (1 / 5, 1 / 5), "seq-mean-token-sum": (1 / 2, 1 / 2),
               "seq-mean-token-mean": (1 / 2, 1 / 8), "seq-mean-token-sum-norm": (1 / 16, 1 / 16)}
    err = 0.0
    for mode, (ws, wl) in formula.items():
        w = aggregation_weights(mask, mode, normalizer=C if mode.endswith("norm") else None, dtype=F64)
        err = max(err, abs(float(w[0, 0]) - ws), float((w[1] - wl).abs().max()))
    # padding width and micro-batch split (global denominators)
    g = _cpu_gen(ctx.seed + 2)
    loss = torch.randn(6, 5, dtype=F64, generator=g).to(ctx.device)
    m = (torch.rand(6, 5, generator=g) < 0.6).to(ctx.device)
    m[:, 0] = True
    inv = 0.0
    for mode in AGGREGATION_MODES:
        kw = {"normalizer": C} if mode.endswith("norm") else {}
        full = aggregate_token_loss(loss, m, mode, **kw)
        padded = torch.cat([loss, torch.full((6, 3), math.nan, dtype=F64, device=ctx.device)], 1)
        pm = torch.cat([m, torch.zeros(6, 3, dtype=torch.bool, device=ctx.device)], 1)
        inv = max(inv, abs(float(aggregate_token_loss(padded, pm, mode, **kw) - full)))
        gkw = dict(kw)
        if mode == "token-mean":
            gkw["normalizer"] = float(m.sum())
        else:
            gkw["num_sequences"] = 6
        split = sum(aggregate_token_loss(loss[i : i + 3], m[i : i + 3], mode, **gkw) for i in (0, 3))
        inv = max(inv, abs(float(split - full)))
    ok = err < 1e-15 and inv < 1e-12
    return Outcome(ok, f"weight err {err:.0e}; padding/split Δ = {inv:.0e}",
                   {"weight_err": err, "invariance_err": inv})


def _group_reference(ctx: VerifyContext) -> Outcome:
    g = _cpu_gen(ctx.seed + 3)
    worst = 0.0
    for i in range(5 if ctx.quick else 20):
        G, K = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(2, 7, (1,), generator=g))
        r = torch.randn(G, K, dtype=F64, generator=g) if i % 2 else torch.randint(0, 2, (G, K), generator=g).to(F64)
        r = r.to(ctx.device)
        for ns in (True, False):
            worst = max(worst, float((group_advantages(r, normalize_std=ns) - group_advantages_reference(r, normalize_std=ns)).abs().max()))
        worst = max(worst, float((rloo_advantages(r) - rloo_advantages_reference(r)).abs().max()))
    raised = 0
    for fn in (group_advantages, group_advantages_reference, rloo_advantages, rloo_advantages_reference):
        try:
            fn(torch.ones(3, 1, dtype=F64, device=ctx.device))
        except ValueError:
            raised += 1
    return Outcome(worst < 1e-12 and raised == 4, f"max |fast − loop| = {worst:.0e}; K=1 raises in {raised}/4",
                   {"max_abs_err": worst, "k1_raises": raised})


def _gae_and_loss(ctx: VerifyContext) -> Outcome:
    g = _cpu_gen(ctx.seed + 4)
    B, L = 4, 7
    r = torch.randn(B, L, dtype=F64, generator=g)
    v = torch.randn(B, L, dtype=F64, generator=g)
    m = torch.rand(B, L, generator=g) < 0.7
    m[:, 0] = True
    gamma, lam = 0.97, 0.8
    adv, _ = token_gae(r.to(ctx.device), v.to(ctx.device), m.to(ctx.device), gamma=gamma, lam=lam)
    ref = torch.zeros(B, L, dtype=F64)
    for b in range(B):
        a_next, v_next = 0.0, 0.0
        for t in reversed([t for t in range(L) if bool(m[b, t])]):  # backward over the response
            a_next = float(r[b, t]) + gamma * v_next - float(v[b, t]) + gamma * lam * a_next
            ref[b, t] = a_next
            v_next = float(v[b, t])
    gae_err = float((adv.cpu() - ref).abs().max())
    lp = torch.randn(B, L, dtype=F64, generator=g)
    old = lp + 0.5 * torch.randn(B, L, dtype=F64, generator=g)
    A = 2 * torch.randn(B, L, dtype=F64, generator=g)
    loss, _ = token_policy_loss(lp.to(ctx.device), old.to(ctx.device), A.to(ctx.device), m.to(ctx.device),
                                mode="seq-mean-token-mean", clip_eps=0.2, clip_eps_high=0.28, dual_clip=2.0)
    w = aggregation_weights(m, "seq-mean-token-mean", dtype=F64)
    tot = 0.0
    for b in range(B):
        for t in range(L):
            if bool(m[b, t]):
                rho = math.exp(float(lp[b, t] - old[b, t]))
                a = float(A[b, t])
                o = min(rho * a, min(max(rho, 0.8), 1.28) * a)
                if a < 0:
                    o = max(o, 2.0 * a)
                tot -= float(w[b, t]) * o
    loss_err = abs(float(loss) - tot)
    return Outcome(gae_err < 1e-12 and loss_err < 1e-12, f"GAE err {gae_err:.0e}; loss err {loss_err:.0e}",
                   {"gae_err": gae_err, "loss_err": loss_err})


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


def _group_samples(ctx, o, th, R, K, fn, offset):
    _, seqs = o.sample_group(th, _n(ctx), K, ctx.generator(offset))
    S = o.score_matrix(th)
    return torch.einsum("gk,gk...->g...", fn(R[0][seqs]) / K, S[seqs])


def _rloo(ctx: VerifyContext) -> Outcome:
    o, th, _, R = _oracle(ctx)
    gJ = o.grad(lambda t: o.objective(t, R), th)
    K = 4 if ctx.quick else 3
    exact = o.expected_group_gradient(th, R, K, rloo_advantages)
    e = _rel(exact, gJ)
    test = check_unbiased(_group_samples(ctx, o, th, R, K, rloo_advantages, 10), gJ, alpha=ALPHA)
    return Outcome(e < 1e-10 and test.passed, f"exact rel. err {e:.0e}; sampled p = {test.p_value:.2g}",
                   {"exact_rel_err": e, "p_value": test.p_value, "K": K})


def _grpo_mean(ctx: VerifyContext) -> Outcome:
    o, th, _, R = _oracle(ctx)
    K = 4 if o.L == 2 else 3  # Nᴷ groups enumerated: 16⁴ or 64³
    gJ = o.grad(lambda t: o.objective(t, R), th)
    fn = lambda r: group_advantages(r, normalize_std=False)  # noqa: E731
    exact = o.expected_group_gradient(th, R, K, fn)
    e = _rel(exact, (K - 1) / K * gJ)
    s = _group_samples(ctx, o, th, R, K, fn, 11)
    vs_true = check_unbiased(s, gJ, alpha=ALPHA)
    vs_shrunk = check_unbiased(s, (K - 1) / K * gJ, alpha=ALPHA)
    ok = e < 1e-10 and not vs_true.passed and vs_shrunk.passed
    return Outcome(ok, f"E = {K - 1}/{K}·∇J (err {e:.0e}); p vs ∇J = {vs_true.p_value:.1g}, "
                   f"vs {K - 1}/{K}·∇J = {vs_shrunk.p_value:.2g}",
                   {"exact_rel_err": e, "p_vs_gradJ": vs_true.p_value, "p_vs_shrunk": vs_shrunk.p_value, "K": K})


def _grpo_std(ctx: VerifyContext) -> Outcome:
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


def _kl_row(est: str):
    def fn(ctx: VerifyContext) -> Outcome:
        o, th, ref, _ = _oracle(ctx)
        tab = kl_placement_table(o, th, ref)
        s = _kl_samples(ctx, o, th, ref, est, 20 + int(est[1]))
        kl_rev = o.grad(lambda t: o.kl(t, ref), th)
        if est == "k1":
            exact_err = tab["k1_loss_norm_over_kl_grad"]
            t = check_unbiased(s, torch.zeros_like(kl_rev), alpha=ALPHA)
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
        t_ok = check_unbiased(s, exact, alpha=ALPHA)
        t_wrong = check_unbiased(s, wrong, alpha=ALPHA)
        ok = err < 1e-12 and gap > 0.02 and t_ok.passed and not t_wrong.passed
        return Outcome(ok, f"= per-conditional (err {err:.0e}); off {label} by {100 * gap:.0f}%; "
                       f"p = {t_ok.p_value:.2g} / {t_wrong.p_value:.1g}",
                       {**tab, "p_exact": t_ok.p_value, "p_sequence_kl": t_wrong.p_value})

    return fn


def _k1_reward(ctx: VerifyContext) -> Outcome:
    o, th, ref, _ = _oracle(ctx)
    tab = kl_placement_table(o, th, ref)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    prompts, seqs = o.sample(th, _n(ctx), ctx.generator(30))
    ref_tok = o.token_log_probs(ref).detach()

    def rtg(lp, p, s):
        ell = (lp - ref_tok[p, s]).detach()
        return (lp * ell.flip(-1).cumsum(-1).flip(-1)).sum(-1)

    t = check_unbiased(o.per_sample_grads(th, rtg, prompts, seqs), kl_rev, alpha=ALPHA)
    err = tab["k1_reward_to_go_vs_seq_kl_rev"]
    return Outcome(err < 1e-12 and t.passed, f"E = ∇KL(π‖ref) (err {err:.0e}); sampled p = {t.p_value:.2g}",
                   {**tab, "p_value": t.p_value})


def checks(ctx: VerifyContext) -> list[Check]:
    C = Check
    return [
        C(AREA, "token_log_probs", "off-by-one: = prefix-by-prefix loop; unshifted read differs", _off_by_one),
        C(AREA, "token_log_probs", "fast == reference loop (float64)", _logprob_reference),
        C(AREA, "aggregation weights", "per-mode weight formulas; padding & micro-batch invariance", _aggregation),
        C(AREA, "group / RLOO advantages", "fast == reference loops; K = 1 raises", _group_reference),
        C(AREA, "token GAE, token PPO loss", "== per-token loops (clip-higher, dual clip)", _gae_and_loss),
        C(AREA, "RLOO unbiased", "exact E over all groups = ∇J; Hotelling T²", _rloo),
        C(AREA, "GRPO mean baseline", "exact E = (K−1)/K ∇J; T² rejects ∇J (power)", _grpo_mean),
        C(AREA, "GRPO std normalization", "exact E not ∥ ∇J (continuous R); binary K=3: (2/√3)∇J", _grpo_std),
        C(AREA, "KL-as-loss k1", "exact E[∇Σk1] = 0; T²", _kl_row("k1")),
        C(AREA, "KL-as-loss k2", "exact = ∇ per-conditional KL(π‖ref) ≠ ∇ sequence KL; T²", _kl_row("k2")),
        C(AREA, "KL-as-loss k3", "exact = ∇ per-conditional KL(ref‖π) ≠ ∇ sequence KL(ref‖π); T²", _kl_row("k3")),
        C(AREA, "KL k1 in reward", "reward-to-go score function: exact = ∇KL(π‖ref); T²", _k1_reward),
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
