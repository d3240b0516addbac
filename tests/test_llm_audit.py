"""``pgmath.llm.audit_loss`` against an independent enumeration, and the issue's reference values.

The independent enumeration below (``_Enum``) re-derives everything the audit computes without
calling :mod:`pgmath.llm.audit` or the oracle's methods: it lists the responses of the EOS tree
itself, computes each token's log-probability from the logits θ by its own node numbering, loops
over every ordered group of K responses with Python loops, calls the loss on each, and
differentiates Σ_groups Πₖ μ(yₖ) 𝓛 w.r.t. θ. The targets (∇J, ∇KL, the per-conditional KLs, ∇J_len)
are also recomputed from their definitions. Every "exact" claim is then checked twice: the
independent expected gradient equals the claimed combination of independent target gradients
(≤ 1e-10 relative), and the audit's coefficient equals the claimed value (≤ 1e-10).

All numbers are float64 and deterministic (fixed seeds); there are no statistical tests here.
"""

from __future__ import annotations

import itertools
import math
import pathlib
import sys
import time
import types

import pytest
import torch

from pgmath.cli import main
from pgmath.llm import group_advantages, kl_loss, policy_loss, rloo_advantages, token_kl
from pgmath.llm.audit import audit_loss
from pgmath.llm.audit_builtin import audit_builtin, builtin_losses
from pgmath.llm.oracle import TreePolicy

F64 = torch.float64
TOL = 1e-10
BETA = 0.1


# --------------------------------------------------------------------------- the independent enumeration
class _Enum:
    """The EOS tree re-derived: responses, per-token log-probs from θ, group expectations, targets."""

    def __init__(self, V: int, L: int, eos: int | None, P: int):
        self.V, self.L, self.eos, self.P = V, L, eos, P
        resp = []
        for seq in itertools.product(range(V), repeat=L):  # cut each sequence at its first EOS
            cut = seq.index(eos) + 1 if eos is not None and eos in seq else L
            if seq[:cut] not in resp:
                resp.append(seq[:cut])
        self.responses = resp

    def node(self, prefix: tuple[int, ...]) -> int:
        code = 0
        for tok in prefix:
            code = code * self.V + tok
        return sum(self.V**i for i in range(len(prefix))) + code

    def token_lp(self, theta: torch.Tensor, p: int, y: tuple[int, ...]) -> torch.Tensor:
        """``[L]`` log π(yₜ|y<ₜ), 0 after the end."""
        out = [torch.log_softmax(theta[p, self.node(y[:t])], -1)[y[t]] for t in range(len(y))]
        out += [torch.zeros((), dtype=F64)] * (self.L - len(y))
        return torch.stack(out)

    def seq_lp(self, theta, p, y):
        return self.token_lp(theta, p, y).sum()

    def batch(self, theta, params, p, group, rewards):
        lp = torch.stack([self.token_lp(theta, p, y) for y in group])
        others = {k: torch.stack([self.token_lp(v, p, y) for y in group]).detach() for k, v in params.items()}
        mask = torch.tensor([[t < len(y) for t in range(self.L)] for y in group])
        return types.SimpleNamespace(
            log_probs=lp, old_log_probs=others["old"], ref_log_probs=others["ref"],
            rollout_log_probs=others["rollout"], mask=mask,
            rewards=torch.tensor([rewards[p][y] for y in group], dtype=F64),
            group_index=torch.zeros(len(group), dtype=torch.long), group_size=len(group))

    def expected_gradient(self, loss_fn, K, theta, ref, old, rollout, rewards, differentiate_sampling=False):
        """Σ_groups Πₖ μ(yₖ) ∇𝓛; ``differentiate_sampling``: the wrong variant ∇ Σ π(g) 𝓛 (μ = π,
        the sampling distribution differentiated too)."""
        th = theta.detach().clone().requires_grad_(True)
        total = torch.zeros((), dtype=F64)
        for p in range(self.P):
            for group in itertools.product(self.responses, repeat=K):
                if differentiate_sampling:
                    prob = torch.exp(sum(self.seq_lp(th, p, y) for y in group))
                else:
                    prob = math.prod(math.exp(float(self.seq_lp(rollout, p, y))) for y in group)
                b = self.batch(th, {"old": old, "ref": ref, "rollout": rollout}, p, group, rewards)
                total = total + prob * loss_fn(b) / self.P
        (g,) = torch.autograd.grad(total, th)
        return g

    def targets(self, theta, ref, rewards) -> dict[str, torch.Tensor]:
        def J(t, per_len=False):
            return sum(torch.exp(self.seq_lp(t, p, y)) * rewards[p][y] / (len(y) if per_len else 1)
                       for p in range(self.P) for y in self.responses) / self.P

        def kl(t, forward):
            tot = 0
            for p in range(self.P):
                for y in self.responses:
                    a, b = self.seq_lp(t, p, y), self.seq_lp(ref, p, y)
                    tot = tot + (torch.exp(b) * (b - a) if forward else torch.exp(a) * (a - b))
            return tot / self.P

        def cond(t, forward):  # Σ over reachable prefixes, P(prefix) held fixed, KL at the node
            tot = 0
            for p in range(self.P):
                prefixes = {y[:i] for y in self.responses for i in range(len(y))}
                for pre in prefixes:
                    w = float(sum(torch.exp(self.seq_lp(t, p, y)).detach() for y in self.responses
                                  if y[:len(pre)] == pre and len(y) > len(pre)))
                    lp = torch.log_softmax(t[p, self.node(pre)], -1)
                    lq = torch.log_softmax(ref[p, self.node(pre)], -1)
                    kl_node = (lq.exp() * (lq - lp)).sum() if forward else (lp.exp() * (lp - lq)).sum()
                    tot = tot + w * kl_node
            return tot / self.P

        fns = {"J": lambda t: J(t), "kl_rev": lambda t: kl(t, False), "kl_fwd": lambda t: kl(t, True),
               "kl_rev_token": lambda t: cond(t, False), "kl_fwd_token": lambda t: cond(t, True),
               "J_len": lambda t: J(t, True)}
        out = {}
        for k, f in fns.items():
            th = theta.detach().clone().requires_grad_(True)
            (out[k],) = torch.autograd.grad(f(th), th)
        return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _independent(audit, loss_fn, point: int = 0):
    """(independent E∇𝓛, independent target gradients) at the audit's point."""
    st = audit.settings
    e = _Enum(st["vocab"], st["length"], st["eos"], st["prompts"])
    pt = audit.points[point]
    seqs, lens = audit.policy.sequences, audit.policy.lengths
    rewards = [{tuple(seqs[n, : lens[n]].tolist()): float(audit.rewards[p, n]) for n in range(audit.policy.N)}
               for p in range(st["prompts"])]
    assert sorted(rewards[0]) == sorted(e.responses)  # the same responses, found independently
    g = e.expected_gradient(loss_fn, st["group_size"], pt.theta, pt.ref, pt.old, pt.rollout, rewards)
    return g, e.targets(pt.theta, pt.ref, rewards)


SMALL = {"vocab": 3, "length": 2, "prompts": 2, "points": 2}


# --------------------------------------------------------------------------- losses
def reinforce(b):
    return -(b.rewards.unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size


def rloo(b):
    a = rloo_advantages(b.rewards.unsqueeze(0))[0]
    return -(a.unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size


def grpo_mean(b):
    a = group_advantages(b.rewards.unsqueeze(0), normalize_std=False)[0]
    return -(a.unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size


def length_normalised(b):
    """GRPO's original 1/|oᵢ| per response (seq-mean-token-mean) with A = R."""
    a = b.rewards.unsqueeze(1).expand_as(b.log_probs)
    return policy_loss(b.log_probs, b.old_log_probs, a, b.mask, objective="reinforce",
                       aggregation="seq-mean-token-mean")[0]


def ppo_rloo(b):
    a = rloo_advantages(b.rewards.unsqueeze(0))[0].unsqueeze(1).expand_as(b.log_probs)
    return policy_loss(b.log_probs, b.old_log_probs, a, b.mask, objective="ppo")[0]


def kl_in_loss(est):
    def f(b):
        return reinforce(b) + BETA * kl_loss(b.log_probs, b.ref_log_probs, b.mask, estimator=est,
                                             mode="seq-mean-token-sum")
    f.__name__ = f"{est}_in_loss"
    return f


def kl_in_reward(est):
    def f(b):
        pen = token_kl(b.log_probs.detach(), b.ref_log_probs, b.mask, est).sum(1)
        return -((b.rewards - BETA * pen).unsqueeze(1) * b.log_probs * b.mask).sum() / b.group_size
    f.__name__ = f"{est}_in_reward"
    return f


def squared_log_prob(b):
    """Estimates none of the targets: −E∇ of (Σ log π)² is not a combination of them."""
    return ((b.log_probs * b.mask).sum(1) ** 2).sum() / b.group_size


# --------------------------------------------------------------------------- the EOS oracle
def test_eos_tree_responses_and_masks():
    o = TreePolicy(vocab=3, length=3, prompts=2, eos=2)
    # lengths 1, 2 end with EOS; length 3: 2·2 prefixes × 3 last tokens → 1 + 2 + 12 = 15
    assert o.N == 15 and sorted(o.lengths.tolist()) == [1] + [2] * 2 + [3] * 12
    th = o.init_params(torch.Generator().manual_seed(0))
    torch.testing.assert_close(o.probs(th).sum(-1), torch.ones(2, dtype=F64))
    assert bool((o.token_log_probs(th)[:, ~o.mask] == 0).all())
    assert torch.equal(o.mask.sum(1), o.lengths)
    # P(reach a depth-t prefix) sums to P(|y| > t)
    p, pp = o.probs(th), o.prefix_probs(th)
    for t in range(3):
        torch.testing.assert_close(pp[:, o.depth == t].sum(-1), (p * (o.lengths > t)).sum(-1))
    with pytest.raises(ValueError, match="eos"):
        TreePolicy(vocab=3, eos=3)


def test_eos_tree_keeps_the_kl_placement_results():
    """k2/k3 as a loss → per-conditional reverse/forward KL, also with responses of varying length."""
    o = TreePolicy(vocab=3, length=3, prompts=2, eos=2)
    g = torch.Generator().manual_seed(1)
    th, ref = o.init_params(g), o.init_params(g)
    for est, direction in (("k2", "reverse"), ("k3", "forward")):
        got = o.grad(lambda t, e=est: o.kl_loss_surrogate(t, ref, e), th)
        want = o.grad(lambda t, d=direction: o.conditional_kl(t, ref, d), th)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- exactness vs the enumeration
@pytest.mark.parametrize("loss_fn,off_policy", [(reinforce, False), (ppo_rloo, "old"), (ppo_rloo, "both"),
                                                (length_normalised, "rollout")])
def test_expected_gradient_equals_independent_enumeration(loss_fn, off_policy):
    a = audit_loss(loss_fn, group_size=3, off_policy=off_policy, **SMALL)
    for i in range(2):
        g, _ = _independent(a, loss_fn, i)
        assert _rel(a.expected_gradient[i], g) < TOL


def test_the_comparison_rejects_wrong_expectations():
    """The 1e-10 comparison can fail: two plausible wrong ways of taking the expectation are caught."""
    a = audit_loss(ppo_rloo, group_size=2, off_policy="old", **SMALL)
    st, pt = a.settings, a.points[0]
    e = _Enum(st["vocab"], st["length"], st["eos"], st["prompts"])
    seqs, lens = a.policy.sequences, a.policy.lengths
    rewards = [{tuple(seqs[n, : lens[n]].tolist()): float(a.rewards[p, n]) for n in range(a.policy.N)}
               for p in range(st["prompts"])]
    # groups weighted by π instead of the sampling policy π_old
    wrong_mu = e.expected_gradient(ppo_rloo, 2, pt.theta, pt.ref, pt.old, pt.theta, rewards)
    assert _rel(a.expected_gradient[0], wrong_mu) > 1e-3
    # on-policy, the sampling distribution differentiated as well (no stop-gradient)
    b = audit_loss(reinforce, group_size=2, **SMALL)
    pb = b.points[0]
    wrong_sg = e.expected_gradient(reinforce, 2, pb.theta, pb.ref, pb.old, pb.rollout, rewards,
                                   differentiate_sampling=True)
    right = e.expected_gradient(reinforce, 2, pb.theta, pb.ref, pb.old, pb.rollout, rewards)
    assert _rel(b.expected_gradient[0], right) < TOL and _rel(b.expected_gradient[0], wrong_sg) > 1e-3


@pytest.mark.parametrize("loss_fn,c_J", [(reinforce, 1.0), (rloo, 1.0), (grpo_mean, 2 / 3)])
def test_group_estimators_exact_coefficients(loss_fn, c_J):
    a = audit_loss(loss_fn, group_size=3, **SMALL)
    g, T = _independent(a, loss_fn)
    assert _rel(-g, c_J * T["J"]) < TOL  # the enumeration: −E∇𝓛 = c_J ∇J
    assert abs(a.coefficients["J"] - c_J) < TOL and a.exact and a.residual < TOL
    for k in ("kl_rev", "kl_fwd", "kl_rev_token", "kl_fwd_token", "J_len"):
        assert abs(a.coefficients[k]) < TOL


def test_grpo_mean_baseline_default_group_size():
    a = audit_loss(grpo_mean, exchangeable=True)  # K = 4 at the defaults
    assert abs(a.coefficients["J"] - 0.75) < TOL and a.residual < TOL


def test_length_normalisation_is_not_a_multiple_of_grad_j():
    """1/|y| per response: once lengths vary the expected gradient is ∇J_len, not c·∇J."""
    a = audit_loss(length_normalised, group_size=2, **SMALL)
    g, T = _independent(a, length_normalised)
    assert _rel(-g, T["J_len"]) < TOL
    cos = float((g * T["J"]).sum() / g.norm() / T["J"].norm())
    assert abs(cos) < 0.99  # not parallel to ∇J
    assert abs(a.coefficients["J_len"] - 1) < TOL and abs(a.coefficients["J"]) < TOL
    # fitted on ∇J alone it would be a coefficient that moves with θ: the per-point J-only fits differ
    ratios = [float((-p.expected_gradient * p.targets["J"]).sum() / p.targets["J"].norm() ** 2) for p in a.points]
    assert abs(ratios[0] - ratios[1]) > 1e-3
    # with a mean baseline the per-length weights are random: no fixed multiple of anything
    def dr_mean_len(b):
        adv = group_advantages(b.rewards.unsqueeze(0), normalize_std=False)[0].unsqueeze(1).expand_as(b.log_probs)
        return policy_loss(b.log_probs, b.old_log_probs, adv, b.mask, objective="reinforce",
                           aggregation="seq-mean-token-mean")[0]
    b = audit_loss(dr_mean_len, group_size=3, **SMALL)
    assert not b.exact and b.varies and b.residual > 1e-3


def test_fixed_length_reports_collinear_targets():
    # no EOS: every response has L tokens, J_len = J / L
    a = audit_loss(length_normalised, group_size=2, eos=None, **SMALL)
    assert a.collinear == {"J_len": "J"} and a.coefficients["J_len"] is None
    assert abs(a.coefficients["J"] - 0.5) < TOL  # 1/L, L = 2
    # one token: per-token KLs are the sequence KLs
    b = audit_loss(kl_in_loss("k2"), group_size=2, length=1, vocab=3, prompts=2, points=2)
    assert b.collinear["kl_rev_token"] == "kl_rev" and b.collinear["kl_fwd_token"] == "kl_fwd"
    assert abs(b.coefficients["kl_rev"] + BETA) < TOL
    assert "collinear with J" in str(a)


@pytest.mark.parametrize("loss_fn,want", [
    (kl_in_loss("k1"), {"J": 1.0}),
    (kl_in_loss("k2"), {"J": 1.0, "kl_rev_token": -BETA}),
    (kl_in_loss("k3"), {"J": 1.0, "kl_fwd_token": -BETA}),
    (kl_in_reward("k1"), {"J": 1.0, "kl_rev": -BETA}),
    (kl_in_reward("k3"), {"J": 1.0, "kl_rev": -BETA, "kl_fwd_token": BETA}),
])
def test_kl_placements_exact(loss_fn, want):
    a = audit_loss(loss_fn, group_size=2, **SMALL)
    g, T = _independent(a, loss_fn)
    combo = sum(c * T[k] for k, c in want.items())
    assert _rel(-g, combo) < TOL
    assert a.exact
    for k, c in a.coefficients.items():
        assert abs(c - want.get(k, 0.0)) < TOL, (k, c)


def test_kl_k2_in_reward_estimates_no_target():
    a = audit_loss(kl_in_reward("k2"), group_size=2, **SMALL)
    assert not a.exact and a.residual > 1e-3


def test_residual_flags_a_loss_that_estimates_no_target():
    a = audit_loss(squared_log_prob, group_size=2, **SMALL)
    g, T = _independent(a, squared_log_prob)
    A = torch.stack([t.reshape(-1) for t in T.values()], 1)
    sol = torch.linalg.lstsq(A, -g.reshape(-1, 1)).solution
    indep_res = float((A @ sol + g.reshape(-1, 1)).norm() / g.norm())
    assert indep_res > 0.05  # independently: far from the span of the targets at this point
    assert abs(a.point_residuals[0] - indep_res) < 1e-8
    assert a.residual > 0.05 and not a.exact
    assert "residual" in a.verdict() or "no fixed multiple" in a.verdict()


def test_k1_as_loss_alone_has_zero_expected_gradient():
    def k1(b):
        return kl_loss(b.log_probs, b.ref_log_probs, b.mask, estimator="k1", mode="seq-mean-token-sum")
    a = audit_loss(k1, group_size=2, **SMALL)
    assert a.zero and a.exact and all(c == 0.0 for c in a.coefficients.values())
    assert float(a.expected_gradient.abs().max()) < 1e-14


def test_vmap_and_loop_give_the_same_gradient():
    a = audit_loss(reinforce, group_size=3, **SMALL)
    b = audit_loss(reinforce, group_size=3, vectorize=False, **SMALL)
    assert a.settings["evaluation"] == "vmap" and b.settings["evaluation"] == "loop"
    assert _rel(a.expected_gradient, b.expected_gradient) < 1e-12
    # a loss that cannot be vmapped (validation calls bool() on tensors) falls back to the loop
    assert audit_loss(ppo_rloo, group_size=2, **SMALL).settings["evaluation"] == "loop"


def test_exchangeable_enumeration_is_the_same():
    a = audit_loss(rloo, group_size=3, **SMALL)
    b = audit_loss(rloo, group_size=3, exchangeable=True, **SMALL)
    assert _rel(b.expected_gradient, a.expected_gradient) < 1e-12


# --------------------------------------------------------------------------- bad input
def test_bad_inputs():
    with pytest.raises(ValueError, match="scalar"):
        audit_loss(lambda b: b.log_probs.sum(1), group_size=2, **SMALL)
    with pytest.raises(ValueError, match="non-finite"):
        audit_loss(lambda b: b.log_probs.sum() * float("nan"), group_size=2, **SMALL)
    with pytest.raises(ValueError, match="no gradient path"):
        audit_loss(lambda b: b.log_probs.detach().sum(), group_size=2, **SMALL)
    free = torch.zeros((), dtype=F64, requires_grad=True)  # a graph, but not through log_probs
    with pytest.raises(ValueError, match="no gradient path"):
        audit_loss(lambda b: b.log_probs.detach().sum() + free, group_size=2, **SMALL)
    with pytest.raises(ValueError, match=r"0-dim torch\.Tensor"):
        audit_loss(lambda b: 1.0, group_size=2, **SMALL)
    with pytest.raises(ValueError, match=r"7\^7 groups = 2470629 .*max_groups = 100000"):
        audit_loss(reinforce, group_size=7, prompts=3)
    with pytest.raises(ValueError, match="off_policy"):
        audit_loss(reinforce, off_policy="sometimes")
    with pytest.raises(ValueError, match="reward"):
        audit_loss(reinforce, reward=torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="group_size"):
        audit_loss(reinforce, group_size=0)
    with pytest.raises(ValueError, match="loss_fn"):
        audit_loss("not a function")


def test_verify_rows_pass_and_can_fail():
    from pgmath.llm.verify import verify_audit
    from pgmath.verification import VerifyContext

    ctx = VerifyContext()
    assert all(verify_audit(w)(ctx).passed for w in ("reinforce", "grpo", "residual"))
    # the residual row's criterion does not flag an estimator: REINFORCE's residual is ~1e-16
    assert audit_loss(reinforce, group_size=3, **SMALL).residual < 1e-12


# --------------------------------------------------------------------------- the catalogue and the command
def test_builtin_catalogue_reference_values():
    names = ["Dr. GRPO · seq-mean-token-sum", "RLOO · seq-mean-token-sum-norm", "GRPO · token-mean",
             "k3 in reward", "k3·ρₜ in loss, on-policy", "mismatch: sequence IS (untruncated)",
             "mismatch: sequence TIS"]
    entries = {e.name for e in builtin_losses()}
    assert set(names) <= entries and len(entries) == len(builtin_losses()) == 75
    got = {}
    for name in names:
        (_e, a), = [r for r in audit_builtin(only=name, progress=False) if r[0].name == name]
        got[name] = a
    c = {n: a.coefficients for n, a in got.items()}
    assert abs(c["Dr. GRPO · seq-mean-token-sum"]["J"] - 2 / 3) < TOL          # (K−1)/K, K = 3
    assert abs(c["RLOO · seq-mean-token-sum-norm"]["J"] - 1 / 2) < TOL          # 1/C, C = L = 2
    assert "J" in got["GRPO · token-mean"].varies
    assert abs(c["k3 in reward"]["kl_rev"] + 0.1) < TOL and abs(c["k3 in reward"]["kl_fwd_token"] - 0.1) < TOL
    assert abs(c["k3·ρₜ in loss, on-policy"]["kl_rev_token"] + 0.1) < TOL
    assert abs(c["mismatch: sequence IS (untruncated)"]["J"] - 1) < TOL
    assert not got["mismatch: sequence TIS"].exact


def test_cli_user_function(tmp_path, monkeypatch, capsys):
    (tmp_path / "user_loss_mod.py").write_text(
        "def loss(batch):\n"
        "    a = batch.rewards - batch.rewards.mean()\n"
        "    return -(a.unsqueeze(1) * batch.log_probs * batch.mask).sum() / batch.group_size\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    start = time.perf_counter()
    rc = main(["audit", "user_loss_mod:loss", "--json", str(tmp_path / "a.json"), "--format", "plain"])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert rc == 0 and "0.75·∇J" in out
    assert elapsed < 30  # the bound at the default sizes (K = 4: 3 × 7⁴ groups × 3 points)
    import json
    data = json.loads((tmp_path / "a.json").read_text())
    assert abs(data["coefficients"]["J"] - 0.75) < TOL and data["exact"]
    assert main(["audit", "user_loss_mod:nope"]) == 2
    assert main(["audit"]) == 2
    sys.modules.pop("user_loss_mod", None)


def test_cli_builtin_runs(tmp_path, capsys):
    rc = main(["audit", "--builtin", "--only", "k2 in loss, on-policy", "--format", "plain",
               "--json", str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "k2 in loss, on-policy" in out and "-0.1" in out
    assert pathlib.Path(tmp_path / "b.json").exists()
    assert main(["audit", "--builtin", "--only", "no such row"]) == 2
