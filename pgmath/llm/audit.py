"""What does a loss's gradient estimate? The exact expected gradient of any LLM-RL loss, decomposed.

A loss ``loss_fn(batch) -> 0-dim tensor`` is computed on a batch of K sampled responses to a
prompt (:class:`AuditBatch`). On the enumerable sequence policy :class:`pgmath.llm.oracle.TreePolicy`
(vocabulary V with an end-of-sequence token, responses of length 1 … L) the audit sums over
*every* possible group y₁ … y_K of each prompt, weighted by its probability Πₖ μ(yₖ) under the
sampling policy μ (π itself on-policy; π_old or a rollout policy off-policy):

    E[∇θ 𝓛] = Σ_p w_p Σ_{y₁…y_K} Πₖ μ(yₖ|p) ∇θ 𝓛(batch(p, y₁…y_K))

exactly (float64, autograd through the loss w.r.t. ``log_probs`` and the chain rule to the
logits θ), then writes it on the gradients of six targets, by least squares:

    −E[∇θ 𝓛] = Σₖ cₖ ∇θ Tₖ + residual,

    J             Σ_p w_p E_π[R]                                  (the return)
    kl_rev        Σ_p w_p KL(π ‖ π_ref) of whole responses
    kl_fwd        Σ_p w_p KL(π_ref ‖ π) of whole responses
    kl_rev_token  Σ_p w_p Σ_nodes sg(P_π(node)) KL(π(·|node) ‖ π_ref(·|node))  (prefixes held fixed)
    kl_fwd_token  the same with KL(π_ref(·|node) ‖ π(·|node))
    J_len         Σ_p w_p E_π[R / |y|]                            (the length-normalised return)

at several random parameter points (θ, θ_ref, θ_old, θ_μ drawn afresh at each). A coefficient is
reported only when it is the same at every point (to :data:`COEF_TOL` relative): a loss whose
coefficient moves with the parameters estimates no fixed multiple of that target. The residual
is the relative norm of the part no target explains (0 for a loss that estimates a combination
of the targets). Targets whose gradients are linearly dependent at the audited sizes (J and J_len
when every response has the same length; token and sequence KLs for L = 1) are detected
(:data:`RANK_TOL`) and reported, the later one dropped, instead of splitting a coefficient
arbitrarily between them.

The batch is one prompt's group: the loss is called once per group of K responses (``group_index``
all 0), so a normalisation "over the batch" (token-mean, REINFORCE++'s whitening) is a
normalisation over one group of K here. Joint batches of several prompts are not enumerated
(Nᴷᴾ groups); for a loss that is a sum of per-prompt terms nothing changes, for a batch-global
normalisation the audit answers for batches of one prompt.

Checked by: ``tests/test_llm_audit.py`` (an independent enumeration of the expected gradient, the
exact coefficients of REINFORCE, RLOO, GRPO's mean baseline, length normalisation, the KL
placements; the residual of a loss that estimates no target; bad input); the verify rows
"audit: …" of :mod:`pgmath.llm.verify`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pgmath.llm.oracle import TreePolicy

__all__ = [
    "COEF_TOL",
    "MAX_GROUPS",
    "OFF_POLICY_MODES",
    "RANK_TOL",
    "RESIDUAL_TOL",
    "TARGETS",
    "AuditBatch",
    "AuditPoint",
    "LossAudit",
    "audit_loss",
    "expected_loss_gradient",
    "group_grid",
    "group_grid_size",
    "independent_targets",
    "target_gradients",
]

#: The targets, in the order the fit keeps them when two are collinear.
TARGETS: tuple[str, ...] = ("J", "kl_rev", "kl_fwd", "kl_rev_token", "kl_fwd_token", "J_len")
#: The most groups (P · Nᴷ) the audit enumerates per parameter point.
MAX_GROUPS = 100_000
#: A coefficient is "fixed" when every point's value is within COEF_TOL · max(1, |c|) of the fit.
COEF_TOL = 1e-6
#: A target is collinear with the ones kept before it when its residual on them is below this
#: (relative to its norm, over all points).
RANK_TOL = 1e-8
#: Below this relative residual the loss estimates the reported combination of targets exactly.
RESIDUAL_TOL = 1e-8
#: ``off_policy`` settings: who samples (μ) and what ``old_log_probs`` is.
OFF_POLICY_MODES: tuple[str, ...] = ("old", "rollout", "both")

F64 = torch.float64


@dataclasses.dataclass(frozen=True)
class AuditBatch:
    """One group of K responses to a prompt, as a trainer's loss sees it (``batch["name"]`` works too).

    Attributes:
      log_probs: ``[K, L]`` log π_θ(yₜ|y<ₜ) — the only differentiable input; 0 after the end.
      old_log_probs: ``[K, L]`` log π_old (the policy the ratio divides by).
      ref_log_probs: ``[K, L]`` log π_ref.
      rollout_log_probs: ``[K, L]`` log μ, the policy that sampled the responses.
      mask: ``[K, L]`` bool, true at response tokens (false after EOS).
      rewards: ``[K]`` R(p, yₖ).
      group_index: ``[K]`` long, the group of each response (all 0: one prompt per batch).
      tokens: ``[K, L]`` long, the response tokens (EOS-padded).
      group_size: K.
    """

    log_probs: torch.Tensor
    old_log_probs: torch.Tensor
    ref_log_probs: torch.Tensor
    rollout_log_probs: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    group_index: torch.Tensor
    tokens: torch.Tensor
    group_size: int

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclasses.dataclass
class AuditPoint:
    """One parameter point: the policies, the exact E[∇θ 𝓛], the target gradients and the fit there."""

    theta: torch.Tensor
    ref: torch.Tensor
    old: torch.Tensor
    rollout: torch.Tensor
    expected_gradient: torch.Tensor
    targets: dict[str, torch.Tensor]
    coefficients: dict[str, float | None]
    residual: float


@dataclasses.dataclass
class LossAudit:
    """The result of :func:`audit_loss`.

    Attributes:
      coefficients: target → cₖ, the fitted coefficient where it is the same at every point;
        None where it varies (see :attr:`varies`) or the target was dropped as collinear.
      residual: ‖−E∇𝓛 − Σ cₖ∇Tₖ‖ / ‖E∇𝓛‖ of one fit over all points (0 when E∇𝓛 = 0).
      expected_gradient: ``[points, P, nodes, V]`` E[∇θ 𝓛] at each point.
      per_point: each point's own fit (target → coefficient).
      point_residuals: each point's own relative residual.
      varies: targets whose coefficient changes from point to point.
      collinear: dropped target → what it is collinear with.
      zero: the expected gradient is 0 at every point.
      points: the :class:`AuditPoint` s (policies and gradients, for an independent check).
      rewards: ``[P, N]``; policy: the oracle; settings: the arguments.
    """

    coefficients: dict[str, float | None]
    residual: float
    expected_gradient: torch.Tensor
    per_point: list[dict[str, float | None]]
    point_residuals: list[float]
    varies: tuple[str, ...]
    collinear: dict[str, str]
    zero: bool
    points: list[AuditPoint]
    rewards: torch.Tensor
    policy: TreePolicy
    settings: dict[str, Any]
    name: str = "loss"

    @property
    def exact(self) -> bool:
        """True when −E∇𝓛 is a fixed combination of the targets (residual and spread below tolerance)."""
        return self.residual <= RESIDUAL_TOL and not self.varies

    def verdict(self) -> str:
        """One line: what −E[∇𝓛] is."""
        if self.zero:
            return "E[∇L] = 0 (no gradient in expectation)"
        combo = _combination(self.coefficients)
        if self.exact:
            return f"−E[∇L] = {combo}"
        if self.varies:
            which = "all coefficients" if len(self.varies) == len(TARGETS) - len(self.collinear) else \
                ", ".join(self.varies)
            return f"no fixed multiple ({which} vary across points); residual {self.residual:.2g}"
        return f"≈ {combo}, residual {self.residual:.2g} (estimates no combination of the targets)"

    def table_rows(self) -> list[list[str]]:
        """Rows ``[target, coefficient, per-point values]`` for :func:`pgmath.tables.print_table`."""
        out = []
        for k in TARGETS:
            c = self.coefficients.get(k)
            if k in self.collinear:
                shown = f"collinear with {self.collinear[k]}"
            elif k in self.varies:
                shown = "varies"
            else:
                shown = _fmt(c)
            out.append([k, shown, ", ".join(_fmt(p.get(k)) for p in self.per_point)])
        out.append(["residual", f"{self.residual:.3g}", ", ".join(f"{r:.3g}" for r in self.point_residuals)])
        return out

    def __str__(self) -> str:
        from pgmath.tables import render_table

        return render_table(["target", "coefficient", "per point"], self.table_rows(),
                            title=f"audit of {self.name}", caption=self.verdict())

    def as_json(self) -> dict[str, Any]:
        """The numbers as plain JSON types."""
        return {"name": self.name, "coefficients": self.coefficients, "residual": self.residual,
                "per_point": self.per_point, "point_residuals": self.point_residuals,
                "varies": list(self.varies), "collinear": self.collinear, "zero": self.zero,
                "exact": self.exact, "verdict": self.verdict(), "settings": self.settings}

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=1)


def _combination(coefficients: dict[str, float | None]) -> str:
    """"c₁·∇T₁ + c₂·∇T₂ − …" over the non-zero coefficients."""
    out = ""
    for k, c in coefficients.items():
        if c is None or abs(c) <= 1e-12:
            continue
        sign = "−" if c < 0 else "+"
        term = f"{_fmt(abs(c))}·∇{k}"
        out = (f"−{term}" if sign == "−" else term) if not out else f"{out} {sign} {term}"
    return out or "0"


def _fmt(c: float | None) -> str:
    if c is None or (isinstance(c, float) and math.isnan(c)):
        return "—"
    if abs(c) < 5e-13:
        return "0"
    return f"{c:.6g}"


# --------------------------------------------------------------------------- validation
def _positive_int(v: object, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return v


def _off_policy_mode(off_policy: object) -> str | None:
    if off_policy is False or off_policy is None:
        return None
    if off_policy is True:
        return "old"
    if off_policy in OFF_POLICY_MODES:
        return str(off_policy)
    raise ValueError(f"off_policy must be False, True or one of {OFF_POLICY_MODES}, got {off_policy!r}")


def _rewards(reward: object, o: TreePolicy, g: torch.Generator) -> torch.Tensor:
    if reward is None or reward == "gaussian":
        return torch.randn(o.P, o.N, dtype=F64, generator=g)
    if reward == "binary":
        return (torch.rand(o.P, o.N, dtype=F64, generator=g) < 0.5).to(F64)
    if isinstance(reward, torch.Tensor):
        if tuple(reward.shape) != (o.P, o.N) or not torch.is_floating_point(reward):
            raise ValueError(f"reward must be a float tensor of shape [prompts, responses] = {(o.P, o.N)}, "
                             f"got {reward.dtype} {tuple(reward.shape)}")
        if not bool(torch.isfinite(reward).all()):
            raise ValueError("reward holds NaN or inf")
        return reward.detach().to(F64)
    raise ValueError(f"reward must be None, 'gaussian', 'binary' or a [prompts, responses] tensor, got {reward!r}")


# --------------------------------------------------------------------------- the expectation
def _check_value(val: object) -> torch.Tensor:
    if not isinstance(val, torch.Tensor):
        raise ValueError(f"loss_fn must return a 0-dim torch.Tensor, got {type(val).__name__}")
    if val.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar (0-dim) loss, got shape {tuple(val.shape)}")
    return val


def expected_loss_gradient(
    loss_fn: Callable[[AuditBatch], torch.Tensor],
    o: TreePolicy,
    theta: torch.Tensor,
    ref: torch.Tensor,
    old: torch.Tensor,
    rollout: torch.Tensor,
    rewards: torch.Tensor,
    group_size: int,
    *,
    exchangeable: bool = False,
    vectorize: bool = True,
    info: dict[str, Any] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """E[∇θ 𝓛] exactly: Σ_p w_p Σ over all Nᴷ ordered groups of Πₖ μ(yₖ|p) ∇θ loss_fn(batch).

    The loss is called once per group (any user loss is allowed: nothing is assumed about how it
    combines the K responses); its gradient w.r.t. the batch's ``log_probs`` is accumulated per
    (prompt, response, step), weighted, and pulled back to θ once (:meth:`TreePolicy.token_pullback`).
    With ``exchangeable=True`` (the loss does not depend on the order of the K responses) only
    the C(N+K−1, K) sorted groups are enumerated, each weighted by its number of orderings.
    With ``vectorize`` the groups of a chunk are evaluated by :func:`torch.func.vmap` where the
    loss allows it (checked against plain calls on two groups), else one call per group; ``info``
    (a dict) receives ``"path"``: "vmap" or "loop".
    Raises ValueError for a non-tensor, non-scalar or non-finite loss, or when no group's loss
    depends on ``log_probs``.
    """
    K = group_size
    lp = o.token_log_probs(theta).detach()
    X = lp.clone().requires_grad_(True)
    old_lp, ref_lp, mu_lp = (o.token_log_probs(t).detach() for t in (old, ref, rollout))
    mu = o.probs(rollout).detach()
    grid, mult = group_grid(o.N, K, exchangeable)
    G = torch.zeros_like(lp)
    reached = False
    for p in range(o.P):
        for start in range(0, grid.shape[0], chunk):
            idx = grid[start:start + chunk]
            w = mu[p][idx].prod(-1) * mult[start:start + chunk]  # [m]
            inputs = (X[p][idx], old_lp[p][idx], ref_lp[p][idx], mu_lp[p][idx], o.mask[idx], rewards[p][idx],
                      o.sequences[idx])  # each [m, …]; the first differentiable
            values = None
            if vectorize and (info is None or info.get("path") != "loop"):
                values = _values_vmap(loss_fn, inputs, K)
            if info is not None:
                info["path"] = "loop" if values is None else "vmap"
            if values is None:
                values = _values_loop(loss_fn, inputs, K)
            if not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise ValueError(f"loss_fn returned a non-finite loss (NaN or inf) on {bad} of {len(values)} groups")
            if not values.requires_grad:
                continue
            (gx,) = torch.autograd.grad((values * w).sum(), X, allow_unused=True)
            if gx is not None:
                G, reached = G + gx, True
    if not reached:
        raise ValueError("loss_fn's result has no gradient path to batch.log_probs "
                         "(detached, or computed without it): there is no gradient to audit")
    return o.token_pullback(theta, G * o.prompt_weights.view(-1, 1, 1))


def _batch(args: tuple[torch.Tensor, ...], K: int) -> AuditBatch:
    x, old, ref, mu, mask, r, tok = args
    return AuditBatch(x, old, ref, mu, mask, r, torch.zeros(K, dtype=torch.long), tok, K)


def _values_loop(loss_fn, inputs: tuple[torch.Tensor, ...], K: int) -> torch.Tensor:
    """``[m]`` the loss of each group, one call per group."""
    per_group = zip(*(t.unbind(0) for t in inputs))  # unbind: one backward node, not m selects
    return torch.stack([_check_value(loss_fn(_batch(args, K))).to(F64) for args in per_group])


def _values_vmap(loss_fn, inputs: tuple[torch.Tensor, ...], K: int) -> torch.Tensor | None:
    """``[m]`` by :func:`torch.func.vmap` over the groups, or None where the loss cannot be vmapped
    (``.item()``, Python branches on tensor values, random ops …) or where its first groups'
    values differ from plain calls (then the loop is used)."""
    def one(*args: torch.Tensor) -> torch.Tensor:
        return _check_value(loss_fn(_batch(args, K))).to(F64)

    try:
        values = torch.func.vmap(one)(*inputs)
    except Exception:  # any failure of the transform means: use the loop
        return None
    if values.shape != inputs[0].shape[:1]:
        return None
    probe = [t[:2] for t in inputs]
    try:
        direct = _values_loop(loss_fn, tuple(probe), K)
    except ValueError:
        return None
    if not torch.allclose(values[:2].detach(), direct.detach(), rtol=1e-12, atol=1e-14, equal_nan=True):
        return None
    return values


def group_grid(n: int, k: int, exchangeable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(groups ``[M, k]`` of response indices, the number of orderings of each ``[M]``): all nᵏ
    ordered groups (multiplicity 1), or with ``exchangeable`` the sorted ones (multisets) with
    multiplicity k! / Πᵢ (count of i)!."""
    if not exchangeable or k == 1:
        grid = torch.cartesian_prod(*[torch.arange(n)] * k).reshape(-1, k)
        return grid, torch.ones(grid.shape[0], dtype=F64)
    grid = torch.combinations(torch.arange(n), k, with_replacement=True)
    counts = torch.zeros(grid.shape[0], n, dtype=torch.long).scatter_add_(1, grid, torch.ones_like(grid))
    log_mult = math.lgamma(k + 1) - torch.lgamma(counts.to(F64) + 1).sum(1)
    return grid, log_mult.exp().round()


def group_grid_size(n: int, k: int, exchangeable: bool = False) -> int:
    """The number of groups :func:`group_grid` enumerates: nᵏ, or C(n+k−1, k) when exchangeable."""
    return math.comb(n + k - 1, k) if exchangeable else n**k


def target_gradients(o: TreePolicy, theta: torch.Tensor, ref: torch.Tensor,
                     rewards: torch.Tensor) -> dict[str, torch.Tensor]:
    """∇θ of each of :data:`TARGETS` at θ (exact, by the oracle's sums)."""
    per_len = rewards / o.lengths.to(F64)
    fns = {
        "J": lambda t: o.objective(t, rewards),
        "kl_rev": lambda t: o.kl(t, ref),
        "kl_fwd": lambda t: o.kl_forward(t, ref),
        "kl_rev_token": lambda t: o.conditional_kl(t, ref, "reverse"),
        "kl_fwd_token": lambda t: o.conditional_kl(t, ref, "forward"),
        "J_len": lambda t: o.objective(t, per_len),
    }
    return {k: o.grad(fns[k], theta) for k in TARGETS}


# --------------------------------------------------------------------------- the fit
def independent_targets(columns: torch.Tensor, names: Sequence[str],
                        tol: float = RANK_TOL) -> tuple[list[int], dict[str, str]]:
    """Greedy: keep a column unless its residual on the kept ones is below ``tol`` of its norm.

    ``columns`` ``[D, T]``. Returns (kept indices, dropped name → "zero" or the kept names
    it is a combination of)."""
    kept: list[int] = []
    dropped: dict[str, str] = {}
    for i in range(columns.shape[1]):
        c = columns[:, i]
        n = float(c.norm())
        if n == 0.0:
            dropped[names[i]] = "zero"
            continue
        if kept:
            A = columns[:, kept]
            coef = torch.linalg.lstsq(A, c.unsqueeze(1)).solution
            res = float((A @ coef).squeeze(1).sub(c).norm()) / n
            if res < tol:
                used = [names[kept[j]] for j in range(len(kept)) if abs(float(coef[j])) > 1e-9]
                dropped[names[i]] = " + ".join(used) if used else "zero"
                continue
        kept.append(i)
    return kept, dropped


def _fit(A: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    coef = torch.linalg.lstsq(A, y.unsqueeze(1)).solution.squeeze(1)
    ny = float(y.norm())
    return coef, (float((A @ coef - y).norm()) / ny if ny > 0 else 0.0)


def audit_loss(
    loss_fn: Callable[[AuditBatch], torch.Tensor],
    *,
    group_size: int = 4,
    vocab: int = 3,
    length: int = 2,
    prompts: int = 3,
    eos: int | None = -1,
    reward: object = None,
    off_policy: bool | str = False,
    points: int = 3,
    scale: float = 1.0,
    off_policy_scale: float = 0.5,
    seed: int = 0,
    max_groups: int = MAX_GROUPS,
    exchangeable: bool = False,
    vectorize: bool = True,
    name: str | None = None,
) -> LossAudit:
    """Exact expected gradient of ``loss_fn`` and its coefficients on the targets (module docstring).

    Args:
      loss_fn: ``loss_fn(batch: AuditBatch) -> 0-dim tensor``, the loss a trainer minimises on
        one group of K responses; differentiable in ``batch.log_probs`` only.
      group_size: K ≥ 1 responses per prompt.
      vocab, length: the oracle's V and L (defaults: V = 3, L = 2 with EOS: 7 responses).
      prompts: P prompts (independent trees, uniform weights): more parameters than targets.
      eos: the EOS token id (−1: the last token, V − 1; None: fixed-length responses).
      reward: None / "gaussian" (R ~ N(0, 1) per prompt and response), "binary" (Bernoulli ½)
        or a ``[P, N]`` float tensor; the same rewards at every point.
      off_policy: False (μ = π_old = π); True or "old" (μ = π_old ≠ π: PPO's later epochs);
        "rollout" (π_old = π, the responses sampled by μ ≠ π: engine mismatch); "both"
        (π_old ≠ π and μ ≠ π_old).
      points: parameter points (≥ 2 to tell a fixed coefficient from a varying one).
      scale: logits θ, θ_ref ~ scale · N(0, 1) at each point.
      off_policy_scale: θ_old = θ + this · N(0, 1) (and θ_μ = θ_old + this · N(0, 1)).
      seed: the generator's seed (rewards, then each point's parameters).
      max_groups: refuse more than this many groups P · Nᴷ per point.
      exchangeable: promise that the loss does not depend on the order of the K responses (true
        of every group estimator in use): the C(N+K−1, K) multisets are enumerated instead of the
        Nᴷ ordered groups, each weighted by its number of orderings (same answer, ~K! faster).
      vectorize: evaluate the groups with :func:`torch.func.vmap` where the loss allows it (same
        numbers; falls back to one call per group); False: always one call per group.
      name: printed in the table.
    Returns:
      a :class:`LossAudit`.
    Raises:
      ValueError: bad arguments; sizes over ``max_groups`` (the count and the limit are named);
        a loss that is not a scalar tensor, is NaN/inf, or has no gradient path to ``log_probs``.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    K = _positive_int(group_size, "group_size")
    points = _positive_int(points, "points")
    mode = _off_policy_mode(off_policy)
    V = _positive_int(vocab, "vocab", 2)
    if eos is not None and eos == -1:
        eos = V - 1
    o = TreePolicy(vocab=V, length=_positive_int(length, "length"), prompts=_positive_int(prompts, "prompts"),
                   eos=eos)
    count = o.P * group_grid_size(o.N, K, exchangeable)
    if count > max_groups:
        per = f"C({o.N}+{K}-1, {K})" if exchangeable else f"{o.N}^{K}"
        raise ValueError(f"{o.P} prompts × {per} groups = {count} groups to enumerate per point exceeds the "
                         f"limit max_groups = {max_groups}: lower group_size, vocab, length or prompts")
    for nm, v in (("scale", scale), ("off_policy_scale", off_policy_scale)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise ValueError(f"{nm} must be a positive finite number, got {v!r}")
    g = torch.Generator().manual_seed(seed)
    R = _rewards(reward, o, g)
    pts: list[AuditPoint] = []
    info: dict[str, Any] = {}
    for _ in range(points):
        th = o.init_params(g, scale).detach()
        ref = o.init_params(g, scale).detach()
        noise_old = off_policy_scale * torch.randn(o.param_shape, dtype=F64, generator=g)
        noise_mu = off_policy_scale * torch.randn(o.param_shape, dtype=F64, generator=g)
        old = th + noise_old if mode in ("old", "both") else th
        mu = {None: th, "old": old, "rollout": th + noise_mu, "both": old + noise_mu}[mode]
        eg = expected_loss_gradient(loss_fn, o, th, ref, old, mu, R, K, exchangeable=exchangeable,
                                    vectorize=vectorize, info=info)
        pts.append(AuditPoint(th, ref, old, mu, eg, target_gradients(o, th, ref, R), {}, 0.0))
    return _decompose(pts, o, R, name or getattr(loss_fn, "__name__", "loss"),
                      {"group_size": K, "vocab": V, "length": o.L, "prompts": o.P, "eos": eos,
                       "responses": o.N, "groups_per_point": count, "exchangeable": exchangeable,
                       "evaluation": info.get("path", "loop"), "off_policy": mode or False,
                       "points": points, "scale": scale, "off_policy_scale": off_policy_scale, "seed": seed,
                       "reward": reward if isinstance(reward, str) or reward is None else "tensor"})


def _decompose(pts: list[AuditPoint], o: TreePolicy, R: torch.Tensor, name: str,
               settings: dict[str, Any]) -> LossAudit:
    """Fit −E∇𝓛 on the target gradients, per point and over all points together."""
    cols = [torch.stack([p.targets[k].reshape(-1) for k in TARGETS], 1) for p in pts]  # [D, T] each
    ys = [-p.expected_gradient.reshape(-1) for p in pts]
    A_all, y_all = torch.cat(cols, 0), torch.cat(ys, 0)
    kept, collinear = independent_targets(A_all, TARGETS)
    scale_ref = max(float(c.norm()) for c in cols)
    zero = float(y_all.norm()) <= 1e-12 * scale_ref
    names = [TARGETS[i] for i in kept]
    if zero:
        coef = torch.zeros(len(kept), dtype=F64)
        residual, per_point, point_res = 0.0, [dict.fromkeys(names, 0.0) for _ in pts], [0.0] * len(pts)
    else:
        coef, residual = _fit(A_all[:, kept], y_all)
        per_point, point_res = [], []
        for A, y in zip(cols, ys):
            c, r = _fit(A[:, kept], y)
            per_point.append({n: float(v) for n, v in zip(names, c)})
            point_res.append(r)
    varies = tuple(n for j, n in enumerate(names)
                   if any(abs(pp[n] - float(coef[j])) > COEF_TOL * max(1.0, abs(float(coef[j])))
                          for pp in per_point))
    coefficients: dict[str, float | None] = {
        k: (None if k in collinear or k in varies else float(coef[names.index(k)])) for k in TARGETS}
    for p, pp, r in zip(pts, per_point, point_res):
        p.coefficients, p.residual = {k: pp.get(k) for k in TARGETS}, r
    return LossAudit(coefficients, residual, torch.stack([p.expected_gradient for p in pts]), per_point,
                     point_res, varies, collinear, zero, pts, R, o, settings, name)
