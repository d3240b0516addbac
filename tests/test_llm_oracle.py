"""The enumerable sequence policy: exact KL-placement results and advantage bias, then sampling.

Exact results are by enumeration of all Vᴸ sequences (autograd through finite sums, float64).
Statistical tests use :func:`pgmath.stats.unbiasedness_test` (Hotelling T²) at level
α = 10⁻³ with fixed seeds: each "passes" assertion is a false alarm with probability 10⁻³ for a
fresh seed (7 such calls here: family-wise ≤ 0.7%), and each "fails" assertion is a power check
against a deliberately wrong target.
"""

from __future__ import annotations

import pytest
import torch

from pgmath.kl import kl_categorical
from pgmath.llm import group_advantages, rloo_advantages, token_kl
from pgmath.llm.oracle import TreePolicy
from pgmath.stats import unbiasedness_test

F64 = torch.float64
ALPHA = 1e-3


def _setup(L: int, prompts: int = 1, seed: int = 0, scale: float = 1.0):
    o = TreePolicy(vocab=4, length=L, prompts=prompts)
    g = torch.Generator().manual_seed(seed)
    return o, o.init_params(g, scale), o.init_params(g, scale), g


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_oracle_is_a_distribution():
    o, th, _, _ = _setup(3, prompts=2)
    p = o.probs(th)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=F64))
    pp = o.prefix_probs(th)
    for t in range(3):
        torch.testing.assert_close(pp[:, o.depth == t].sum(-1), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match="vocab"):
        TreePolicy(vocab=1)
    with pytest.raises(ValueError, match="too many"):
        TreePolicy(vocab=10, length=5)


def test_exact_policy_gradient_is_the_score_function_sum():
    o, th, _, g = _setup(3)
    R = torch.randn(1, o.N, dtype=F64, generator=g)
    gJ = o.grad(lambda t: o.objective(t, R), th)
    S = o.score_matrix(th)
    sf = torch.einsum("n,n...->...", o.probs(th).detach()[0] * R[0], S)
    torch.testing.assert_close(gJ, sf.unsqueeze(0) if sf.dim() == 2 else sf, rtol=1e-12, atol=1e-14)


def test_sequence_kl_chain_rule():
    """KL(π‖π_ref) of sequences = Σ_nodes P_π(node) KL(π(·|node) ‖ π_ref(·|node))."""
    o, th, ref, _ = _setup(3, prompts=2)
    chain = (o.prefix_probs(th) * kl_categorical(th, ref)).sum(-1).mean()
    assert float(o.kl(th, ref).detach()) == pytest.approx(float(chain.detach()), rel=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_kl_as_loss_expected_gradients_exact(L):
    o, th, ref, _ = _setup(L, prompts=2)
    g = {e: o.grad(lambda t, e=e: o.kl_loss_surrogate(t, ref, e), th) for e in ("k1", "k2", "k3")}
    c_rev = o.grad(lambda t: o.conditional_kl(t, ref, "reverse"), th)
    c_fwd = o.grad(lambda t: o.conditional_kl(t, ref, "forward"), th)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    kl_fwd = o.grad(lambda t: o.kl_forward(t, ref), th)
    # k1 as a loss: zero in expectation, exactly
    assert float(g["k1"].abs().max()) < 1e-14
    # k2 → per-conditional reverse KL, k3 → per-conditional forward KL (prefixes from π, fixed)
    torch.testing.assert_close(g["k2"], c_rev, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g["k3"], c_fwd, rtol=1e-12, atol=1e-14)
    if L == 1:  # one token: the field's belief is exact
        torch.testing.assert_close(g["k2"], kl_rev, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g["k3"], kl_fwd, rtol=1e-12, atol=1e-14)
    else:  # sequences: neither is the gradient of a sequence-level KL (pinned: > 5% off)
        assert _rel(g["k2"], kl_rev) > 0.05
        assert _rel(g["k3"], kl_fwd) > 0.05
        assert _rel(g["k3"], kl_rev) > 0.05


def test_k1_in_reward_is_exact_kl_gradient():
    o, th, ref, _ = _setup(3, prompts=2)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    for credit in ("reward-to-go", "total"):
        got = o.grad(lambda t, c=credit: o.k1_reward_surrogate(t, ref, c), th)
        torch.testing.assert_close(got, kl_rev, rtol=1e-12, atol=1e-14)
    # the per-token (immediate) penalty without reward-to-go is exactly the k2-as-loss gradient
    imm = o.grad(lambda t: o.k1_reward_surrogate(t, ref, "immediate"), th)
    k2 = o.grad(lambda t: o.kl_loss_surrogate(t, ref, "k2"), th)
    torch.testing.assert_close(imm, k2, rtol=1e-12, atol=1e-14)
    assert _rel(imm, kl_rev) > 0.05


def test_k2_k3_match_kl_gradient_to_first_order_only():
    """θ = θ_ref + δu: ‖∇_k − ∇KL‖ = O(δ²) while ‖∇KL‖ = O(δ) (Fisher chain rule)."""
    o = TreePolicy(vocab=4, length=3)
    g = torch.Generator().manual_seed(3)
    ref = o.init_params(g)
    u = torch.randn(o.param_shape, dtype=F64, generator=g)
    for est in ("k2", "k3"):
        diffs = []
        for delta in (0.1, 0.05, 0.025):
            th = (ref + delta * u).detach()
            gk = o.grad(lambda t, e=est: o.kl_loss_surrogate(t, ref, e), th)
            gkl = o.grad(lambda t: o.kl(t, ref), th)
            diffs.append(float((gk - gkl).norm()))
        slopes = [diffs[i] / diffs[i + 1] for i in range(2)]
        assert all(3.5 < s < 4.5 for s in slopes), (est, slopes)  # halving δ quarters the gap


def _binary(o, g, prompts=1, p=0.3):
    return (torch.rand(prompts, o.N, generator=g, dtype=F64) < p).to(F64)


def test_advantage_estimators_exact():
    o, th, _, g = _setup(2, prompts=1)
    K = 3
    R = torch.randn(1, o.N, dtype=F64, generator=g)
    gJ = o.grad(lambda t: o.objective(t, R), th)
    rloo = o.expected_group_gradient(th, R, K, rloo_advantages)
    mean_only = o.expected_group_gradient(th, R, K, lambda r: group_advantages(r, normalize_std=False))
    std = o.expected_group_gradient(th, R, K, group_advantages)
    torch.testing.assert_close(rloo, gJ, rtol=1e-10, atol=1e-13)  # unbiased
    torch.testing.assert_close(mean_only, (K - 1) / K * gJ, rtol=1e-10, atol=1e-13)  # shrunk
    cos = float((std * gJ).sum() / std.norm() / gJ.norm())
    assert cos < 0.999  # std normalisation: not even the direction of ∇J (continuous rewards)
    # binary reward, one prompt: a positive multiple of ∇J (the multiple depends on π)
    Rb = _binary(o, g)
    gJb = o.grad(lambda t: o.objective(t, Rb), th)
    stdb = o.expected_group_gradient(th, Rb, K, group_advantages)
    cosb = float((stdb * gJb).sum() / stdb.norm() / gJb.norm())
    assert cosb == pytest.approx(1.0, abs=1e-10)
    assert abs(float(stdb.norm() / gJb.norm()) - 1.0) > 0.05
    # binary reward, two prompts (one easy, one hard). With K = 2 or 3 the std-normalised
    # estimator is exactly a constant multiple of ∇J (1/√2, 2/√3, whatever the success rate);
    # from K = 4 on the multiple depends on each prompt's success rate, so the direction changes.
    o2 = TreePolicy(vocab=4, length=2, prompts=2)
    th2 = o2.init_params(g)
    R2 = torch.zeros(2, o2.N, dtype=F64)
    R2[0, :8] = 1.0  # an easy prompt
    R2[1, [0, 5]] = 1.0  # a hard one
    gJ2 = o2.grad(lambda t: o2.objective(t, R2), th2)
    exact_std = lambda r: group_advantages(r, eps=0.0)  # noqa: E731
    for k, multiple in ((2, 2**-0.5), (3, 2 / 3**0.5)):
        torch.testing.assert_close(
            o2.expected_group_gradient(th2, R2, k, exact_std), multiple * gJ2, rtol=1e-10, atol=1e-13
        )
    std4 = o2.expected_group_gradient(th2, R2, 4, exact_std)
    rloo4 = o2.expected_group_gradient(th2, R2, 4, rloo_advantages)
    torch.testing.assert_close(rloo4, gJ2, rtol=1e-10, atol=1e-13)
    # per prompt: parallel to that prompt's ∇J_p, with a multiple that depends on its success rate
    mult = []
    for p in range(2):
        a, b = std4[p].flatten(), gJ2[p].flatten()
        assert float(a @ b / a.norm() / b.norm()) == pytest.approx(1.0, abs=1e-10)
        mult.append(float(a.norm() / b.norm()))
    assert abs(mult[0] - mult[1]) > 0.01 * mult[0], mult


def _per_sample_kl_grads(o, th, ref, est, n, g):
    prompts, seqs = o.sample(th, n, g)
    ref_tok = o.token_log_probs(ref).detach()
    ones = torch.ones(n, o.L, dtype=torch.bool)

    def fn(lp, p, s):
        return token_kl(lp, ref_tok[p, s], ones, est).sum(-1)

    return o.per_sample_grads(th, fn, prompts, seqs)


# sampling tests use logits of scale 0.5 so that every prefix node is visited often (a node that
# no sample visits has zero sample variance, and any exact mass there is a certain rejection)


def test_kl_placement_by_sampling():
    o, th, ref, g = _setup(3, scale=0.5)
    n = 4000
    c_rev = o.grad(lambda t: o.conditional_kl(t, ref, "reverse"), th)
    c_fwd = o.grad(lambda t: o.conditional_kl(t, ref, "forward"), th)
    kl_rev = o.grad(lambda t: o.kl(t, ref), th)
    kl_fwd = o.grad(lambda t: o.kl_forward(t, ref), th)
    s1 = _per_sample_kl_grads(o, th, ref, "k1", n, g)
    assert unbiasedness_test(s1, torch.zeros_like(kl_rev), alpha=ALPHA).passed
    s2 = _per_sample_kl_grads(o, th, ref, "k2", n, g)
    assert unbiasedness_test(s2, c_rev, alpha=ALPHA).passed
    assert not unbiasedness_test(s2, kl_rev, alpha=ALPHA).passed  # power: the field's belief
    s3 = _per_sample_kl_grads(o, th, ref, "k3", n, g)
    assert unbiasedness_test(s3, c_fwd, alpha=ALPHA).passed
    assert not unbiasedness_test(s3, kl_fwd, alpha=ALPHA).passed
    # k1 in the reward with reward-to-go: unbiased for ∇KL(π‖π_ref)
    prompts, seqs = o.sample(th, n, g)
    ref_tok = o.token_log_probs(ref).detach()

    def rtg(lp, p, s):
        ell = (lp - ref_tok[p, s]).detach()
        return (lp * ell.flip(-1).cumsum(-1).flip(-1)).sum(-1)

    s_rtg = o.per_sample_grads(th, rtg, prompts, seqs)
    assert unbiasedness_test(s_rtg, kl_rev, alpha=ALPHA).passed


def test_advantage_estimators_by_sampling():
    o, th, _, g = _setup(3, scale=0.5)
    K, G = 4, 4000
    R = torch.randn(1, o.N, dtype=F64, generator=g)
    gJ = o.grad(lambda t: o.objective(t, R), th)
    S = o.score_matrix(th)  # [N, *param_shape]
    _, seqs = o.sample_group(th, G, K, g)
    r = R[0][seqs]

    def per_group(adv):
        return torch.einsum("gk,gk...->g...", adv / K, S[seqs])

    assert unbiasedness_test(per_group(rloo_advantages(r)), gJ, alpha=ALPHA).passed
    mean_only = per_group(group_advantages(r, normalize_std=False))
    assert not unbiasedness_test(mean_only, gJ, alpha=ALPHA).passed  # power: biased by (K−1)/K
    assert unbiasedness_test(mean_only, (K - 1) / K * gJ, alpha=ALPHA).passed
