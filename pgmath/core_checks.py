"""The core formulas' rows of ``pgmath verify`` (issue 2).

Every function here takes the implementation under test as an argument (defaulting to pgmath's),
so the test suite can hand it a deliberately wrong formula and see the check fail
(``tests/test_core_checks.py``). Tolerances are float64 round-off (1e-10), not loose bounds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pgmath.distributions import categorical_log_prob
from pgmath.kl import kl_categorical, kl_estimate
from pgmath.losses import policy_gradient_loss, ppo_clip_loss, value_loss
from pgmath.rollouts import random_rollout
from pgmath.specs import SPECS, verify_rows
from pgmath.verification import Check, Outcome, VerifyContext

__all__ = ["TOL", "checks"]

TOL = 1e-10
F64 = torch.float64


def _gen(ctx: VerifyContext, offset: int) -> torch.Generator:
    return ctx.generator(offset)


def _rollouts(ctx: VerifyContext, offset: int):
    """A few realistic float64 rollouts of assorted shapes and episode-end rates."""
    g = _gen(ctx, offset)
    shapes = [(1, ()), (7, (3,)), (64, (4, 2)), (300, (5,))]
    rates = [(0.0, 0.0), (0.1, 0.05), (0.5, 0.3), (1.0, 0.0)]
    out = []
    for (T, B), (pt, pc) in zip(shapes, rates):
        out.append(random_rollout(T, B, p_terminate=pt, p_truncate=pc, dtype=F64, device=ctx.device, generator=g))
    return out


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _verdict(err: float, tol: float = TOL, what: str = "max |err|") -> Outcome:
    return Outcome(passed=err <= tol, statistic=f"{what} = {err:.1e}", data={"max_abs_error": err, "tol": tol})


# --- gradients ---------------------------------------------------------------------------------


def check_softmax_score(ctx: VerifyContext, log_prob_fn: Callable = categorical_log_prob) -> Outcome:
    """∂ log π(a) / ∂z = onehot(a) − π, by autograd."""
    g = _gen(ctx, 8)
    z = torch.randn(32, 5, dtype=F64, device=ctx.device, generator=g, requires_grad=True)
    a = torch.randint(0, 5, (32,), device=ctx.device, generator=g)
    (grad,) = torch.autograd.grad(log_prob_fn(z, a).sum(), z)
    want = torch.nn.functional.one_hot(a, 5).to(F64) - torch.softmax(z.detach(), -1)
    return _verdict(_err(grad, want))


def check_pg_loss_gradient(ctx: VerifyContext, loss_fn: Callable = policy_gradient_loss) -> Outcome:
    """−∇z L = mean(Âₜ (onehot(aₜ) − π)) for softmax logits (the log-derivative trick)."""
    g = _gen(ctx, 9)
    N, A = 24, 4
    z = torch.randn(N, A, dtype=F64, device=ctx.device, generator=g, requires_grad=True)
    a = torch.randint(0, A, (N,), device=ctx.device, generator=g)
    adv = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    mask = torch.rand(N, device=ctx.device, generator=g) < 0.7
    (grad,) = torch.autograd.grad(loss_fn(categorical_log_prob(z, a), adv, mask), z)
    score = torch.nn.functional.one_hot(a, A).to(F64) - torch.softmax(z.detach(), -1)
    want = -(mask.to(F64) * adv)[:, None] * score / mask.sum()
    return _verdict(_err(grad, want))


def ppo_analytic_grad(ratio, adv, eps_low, eps_high, dual_clip, n):
    """dL/d log πθ of the PPO loss, piecewise: −ρÂ/n where the unclipped branch is active, else 0."""
    active = torch.ones_like(ratio, dtype=torch.bool)
    active &= ~((adv > 0) & (ratio > 1 + eps_high))
    active &= ~((adv < 0) & (ratio < 1 - eps_low))
    if dual_clip is not None:
        clipped_obj = torch.minimum(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)
        active &= ~((adv < 0) & (clipped_obj < dual_clip * adv))
    return torch.where(active, -ratio * adv / n, torch.zeros_like(ratio))


def check_ppo_gradient(ctx: VerifyContext, loss_fn: Callable = ppo_clip_loss) -> Outcome:
    """PPO clip / clip-higher / dual clip: autograd gradient == the piecewise analytic form."""
    g = _gen(ctx, 10)
    N = 400
    err = 0.0
    for eps_low, eps_high, dual in [(0.2, None, None), (0.2, 0.28, None), (0.1, 0.3, 3.0)]:
        old = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
        lp = (old + 0.6 * torch.randn(N, dtype=F64, device=ctx.device, generator=g)).requires_grad_(True)
        adv = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
        loss, _ = loss_fn(lp, old, adv, clip_eps=eps_low, clip_eps_high=eps_high, dual_clip=dual)
        (grad,) = torch.autograd.grad(loss, lp)
        ratio = (lp.detach() - old).exp()
        want = ppo_analytic_grad(ratio, adv, eps_low, eps_high if eps_high else eps_low, dual, N)
        err = max(err, _err(grad, want))
    return _verdict(err)


def check_value_loss_gradient(ctx: VerifyContext, loss_fn: Callable = value_loss) -> Outcome:
    """∂/∂V ½ mean (V − R)² = (V − R)/n; clipped: the branch with the larger error."""
    g = _gen(ctx, 11)
    N = 50
    v = torch.randn(N, dtype=F64, device=ctx.device, generator=g, requires_grad=True)
    R = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    old = v.detach() + 0.5 * torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    (g1,) = torch.autograd.grad(loss_fn(v, R), v)
    err = _err(g1, (v.detach() - R) / N)
    (g2,) = torch.autograd.grad(loss_fn(v, R, old_values=old, clip_eps=0.2), v)
    vd = v.detach()
    v_clip = old + (vd - old).clamp(-0.2, 0.2)
    inside = (vd - old).abs() < 0.2
    use_clip = (v_clip - R) ** 2 > (vd - R) ** 2
    want = torch.where(use_clip & ~inside, torch.zeros_like(vd), (torch.where(use_clip, v_clip, vd) - R) / N)
    return _verdict(max(err, _err(g2, want)))


def check_gradcheck(ctx: VerifyContext) -> Outcome:
    """torch.autograd.gradcheck (finite differences) on every loss, in float64."""
    g = _gen(ctx, 12)
    N = 12
    lp = torch.randn(N, dtype=F64, device=ctx.device, generator=g, requires_grad=True)
    old = lp.detach() + 0.1 * torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    adv = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    R = torch.randn(N, dtype=F64, device=ctx.device, generator=g)
    z = torch.randn(N, 3, dtype=F64, device=ctx.device, generator=g, requires_grad=True)
    a = torch.randint(0, 3, (N,), device=ctx.device, generator=g)
    ok = all([
        torch.autograd.gradcheck(lambda x: policy_gradient_loss(x, adv), (lp,)),
        torch.autograd.gradcheck(lambda x: ppo_clip_loss(x, old, adv, clip_eps=0.2)[0], (lp,)),
        torch.autograd.gradcheck(lambda x: value_loss(x, R), (lp,)),
        torch.autograd.gradcheck(lambda x: categorical_log_prob(x, a), (z,)),
        torch.autograd.gradcheck(lambda x: kl_estimate(x, old, "k3"), (lp,)),
    ])
    return Outcome(ok, "5/5 losses pass" if ok else "gradcheck failed")


# --- KL ---------------------------------------------------------------------------------------


def check_kl_unbiased_exact(ctx: VerifyContext, kl_fn: Callable = kl_estimate) -> Outcome:
    """E_{x~p}[k1] = E_{x~p}[k3] = KL(p‖q), by exact enumeration over categoricals (no sampling)."""
    g = _gen(ctx, 13)
    zp = torch.randn(20, 6, dtype=F64, device=ctx.device, generator=g)
    zq = torch.randn(20, 6, dtype=F64, device=ctx.device, generator=g)
    logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
    exact = kl_categorical(zp, zq)
    err = 0.0
    for est in ("k1", "k3"):
        expectation = (logp.exp() * kl_fn(logp, logq, est)).sum(-1)
        err = max(err, _err(expectation, exact))
    return _verdict(err)


def check_k3_nonnegative(ctx: VerifyContext, kl_fn: Callable = kl_estimate) -> Outcome:
    x = torch.linspace(-30, 30, 20001, dtype=F64, device=ctx.device)
    k3 = kl_fn(x, torch.zeros_like(x), "k3")
    worst = float(k3.min())
    return Outcome(worst >= 0.0, f"min k3 = {worst:.1e}", {"min_k3": worst})


def check_k2_second_order(ctx: VerifyContext, kl_fn: Callable = kl_estimate) -> Outcome:
    """|E_p[k2] − KL(p‖q)| = O(ε³) when q = p(1 + εh): the ratio err(ε)/err(ε/2) → 8."""
    g = _gen(ctx, 14)
    zp = torch.randn(6, dtype=F64, device=ctx.device, generator=g)
    h = torch.randn(6, dtype=F64, device=ctx.device, generator=g)

    def gap(eps: float) -> float:
        zq = zp + eps * h
        logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
        e_k2 = float((logp.exp() * kl_fn(logp, logq, "k2")).sum())
        return abs(e_k2 - float(kl_categorical(zp, zq)))

    ratios = [gap(e) / max(gap(e / 2), 1e-300) for e in (0.02, 0.01)]
    ok = all(6.0 < r < 10.0 for r in ratios)
    return Outcome(ok, f"err(ε)/err(ε/2) = {ratios[-1]:.2f} (cubic → 8)", {"ratios": ratios})


def check_kl_categorical(ctx: VerifyContext, kl_fn: Callable = kl_categorical) -> Outcome:
    """Exact KL against torch.distributions.kl_divergence."""
    g = _gen(ctx, 15)
    zp = torch.randn(30, 7, dtype=F64, device=ctx.device, generator=g)
    zq = torch.randn(30, 7, dtype=F64, device=ctx.device, generator=g)
    C = torch.distributions.Categorical
    want = torch.distributions.kl_divergence(C(logits=zp), C(logits=zq))
    return _verdict(_err(kl_fn(zp, zq), want))


# --- bad input --------------------------------------------------------------------------------


def bad_input_cases(device: torch.device | str = "cpu") -> list[tuple[str, Callable[[], object], str]]:
    """(description, call, argument name the ValueError must mention)."""
    d = {"dtype": F64, "device": device}
    r, v = torch.zeros(5, 2, **d), torch.zeros(5, 2, **d)
    return [
        ("ppo: clip_eps 0", lambda: ppo_clip_loss(r, v, v, clip_eps=0.0), "clip_eps"),
        ("ppo: dual_clip 1", lambda: ppo_clip_loss(r, v, v, dual_clip=1.0), "dual_clip"),
        ("ppo: adv shape", lambda: ppo_clip_loss(r, v, v[0]), "advantages"),
        ("value: clip without old", lambda: value_loss(r, v, clip_eps=0.2), "old_values"),
        ("kl: unknown estimator", lambda: kl_estimate(r, v, "k4"), "estimator"),
        ("log_prob: action out of range", lambda: categorical_log_prob(r, torch.full((5,), 9, device=device)), "actions"),
    ]


def check_bad_input(ctx: VerifyContext) -> Outcome:
    failures = []
    cases = bad_input_cases(ctx.device)
    for desc, call, arg in cases:
        try:
            call()
            failures.append(f"{desc}: no error")
        except ValueError as exc:
            if arg not in str(exc):
                failures.append(f"{desc}: message does not name {arg!r}: {exc}")
    n = len(cases)
    return Outcome(not failures, f"{n - len(failures)}/{n} rejected by name", {"failures": failures})


def checks(ctx: VerifyContext) -> list[Check]:
    c = "core"
    return [
        *verify_rows(SPECS, "core"),  # the formulas that have a spec (pgmath.specs)
        Check(c, "softmax score", "∇z log π(a) == onehot(a) − π", check_softmax_score),
        Check(c, "policy-gradient loss", "∇ == −mean Â (onehot − π) (log-derivative trick)", check_pg_loss_gradient),
        Check(c, "PPO clip (+high, dual)", "∇ == piecewise ρÂ / 0", check_ppo_gradient),
        Check(c, "value loss (clipped)", "∇ == analytic", check_value_loss_gradient),
        Check(c, "all losses", "torch.autograd.gradcheck (finite differences)", check_gradcheck),
        Check(c, "KL k1, k3", "E_p[k] == KL(p‖q) by exact enumeration", check_kl_unbiased_exact),
        Check(c, "KL k3", "k3 ≥ 0 on ℓ ∈ [−30, 30]", check_k3_nonnegative),
        Check(c, "KL k2", "E_p[k2] − KL = O(ε³)", check_k2_second_order),
        Check(c, "KL exact (categorical)", "== torch.distributions.kl_divergence", check_kl_categorical),
        Check(c, "input validation", "bad input → ValueError naming the argument", check_bad_input),
    ]
