"""The catalogue ``pgmath audit --builtin``: every objective pgmath implements, audited exactly.

Each entry is a loss on one group of K responses (:class:`pgmath.llm.audit.AuditBatch`) built
from pgmath's public functions only, with the sampling setting it is audited in:

* ``advantage × aggregation`` (on-policy): the REINFORCE token loss −Â·log π with Â from no
  baseline (R), GRPO (std, ε = 10⁻⁶), Dr. GRPO (mean only), RLOO or REINFORCE++ (token rewards,
  reward-to-go, whitened over the batch's tokens), each in the five aggregations of
  :func:`pgmath.llm.policy_loss`. On-policy every objective of :data:`pgmath.llm.OBJECTIVES`
  has the REINFORCE gradient (a property of the spec ``policy_loss``), so one objective stands for all.
* ``objective × aggregation`` (off-policy, responses from π_old ≠ π): each objective with RLOO
  advantages, where the ratio and its clipping matter.
* ``KL``: k1/k2/k3 subtracted from the reward (detached, β·Σₜkₜ, score function), added to the
  loss (β·Σₜkₜ, differentiated), added to the loss with the token ratio ρₜ = π/π_old
  (differentiated: TRL's ``use_bias_correction_kl``), on-policy and off-policy; the policy term
  is REINFORCE with the sequence importance weight, so c_J = 1 and the KL coefficients stand alone.
* ``mismatch``: responses from a rollout policy μ ≠ π_old = π (engine mismatch): no correction,
  token / sequence truncated importance sampling (cap C = :data:`TIS_CAP`), sequence masked
  importance sampling, and the untruncated sequence weight.

Checked by: ``tests/test_llm_audit.py::test_builtin_catalogue_reference_values`` (pinned rows)
and ``test_cli_builtin_runs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from pgmath.llm.advantages import (
    batch_normalized_returns,
    group_advantages,
    rloo_advantages,
    token_rewards,
)
from pgmath.llm.aggregate import aggregate_token_loss
from pgmath.llm.audit import TARGETS, AuditBatch, LossAudit, audit_loss
from pgmath.llm.kl import token_kl
from pgmath.llm.policy_loss import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss

__all__ = ["ADVANTAGES", "BETA", "BUILTIN_SIZES", "TIS_CAP", "BuiltinLoss", "audit_builtin",
           "builtin_losses", "builtin_table"]

#: The KL coefficient β of the KL rows.
BETA = 0.1
#: The cap C of truncated / masked importance sampling (Yao et al. 2025 use C = 2).
TIS_CAP = 2.0
#: The sizes of the builtin audit: V = 3 with EOS, L = 2 (7 responses), K = 3, P = 2, 2 points.
BUILTIN_SIZES: dict[str, int] = {"vocab": 3, "length": 2, "group_size": 3, "prompts": 2, "points": 2}


@dataclasses.dataclass(frozen=True)
class BuiltinLoss:
    """One catalogue row: ``name``, ``section``, the loss, its sampling setting, what it is."""

    name: str
    section: str
    loss_fn: Callable[[AuditBatch], torch.Tensor]
    off_policy: bool | str
    note: str


def _tokens(adv: torch.Tensor, b: AuditBatch) -> torch.Tensor:
    """``[K]`` response advantages → ``[K, L]`` per token."""
    return adv.reshape(-1, 1).expand_as(b.log_probs)


def _adv_none(b: AuditBatch) -> torch.Tensor:
    return _tokens(b.rewards, b)


def _adv_grpo(b: AuditBatch) -> torch.Tensor:
    return _tokens(group_advantages(b.rewards.unsqueeze(0))[0], b)


def _adv_drgrpo(b: AuditBatch) -> torch.Tensor:
    return _tokens(group_advantages(b.rewards.unsqueeze(0), normalize_std=False)[0], b)


def _adv_rloo(b: AuditBatch) -> torch.Tensor:
    return _tokens(rloo_advantages(b.rewards.unsqueeze(0))[0], b)


def _adv_reinforce_pp(b: AuditBatch) -> torch.Tensor:
    return batch_normalized_returns(token_rewards(b.rewards, b.mask), b.mask)


#: advantage name → function of the batch giving ``[K, L]`` advantages.
ADVANTAGES: dict[str, Callable[[AuditBatch], torch.Tensor]] = {
    "R (no baseline)": _adv_none, "GRPO": _adv_grpo, "Dr. GRPO": _adv_drgrpo, "RLOO": _adv_rloo,
    "REINFORCE++": _adv_reinforce_pp,
}


def _policy(objective: str, aggregation: str, advantage: str) -> Callable[[AuditBatch], torch.Tensor]:
    adv_fn = ADVANTAGES[advantage]

    def loss(b: AuditBatch) -> torch.Tensor:
        # Dr. GRPO's constant C is the maximum response length L
        norm = float(b.mask.shape[1]) if aggregation == "seq-mean-token-sum-norm" else None
        return policy_loss(b.log_probs, b.old_log_probs, adv_fn(b), b.mask, objective=objective,
                           aggregation=aggregation, normalizer=norm)[0]

    return loss


def _seq_is_reinforce(b: AuditBatch) -> torch.Tensor:
    """−(1/K) Σ_b sg(π(y_b)/μ(y_b)) R_b log π(y_b): unbiased for ∇J whoever sampled."""
    w = ((b.log_probs - b.rollout_log_probs) * b.mask).sum(1).detach().exp()
    return -(w * b.rewards * (b.log_probs * b.mask).sum(1)).sum() / b.group_size


def _kl_reward(est: str) -> Callable[[AuditBatch], torch.Tensor]:
    def loss(b: AuditBatch) -> torch.Tensor:
        pen = token_kl(b.log_probs.detach(), b.ref_log_probs, b.mask, est).sum(1)  # [K], detached
        w = ((b.log_probs - b.rollout_log_probs) * b.mask).sum(1).detach().exp()
        return -(w * (b.rewards - BETA * pen) * (b.log_probs * b.mask).sum(1)).sum() / b.group_size

    return loss


def _kl_loss(est: str, ratio: bool) -> Callable[[AuditBatch], torch.Tensor]:
    def loss(b: AuditBatch) -> torch.Tensor:
        k = token_kl(b.log_probs, b.ref_log_probs, b.mask, est)
        if ratio:
            k = k * torch.exp(b.log_probs - b.old_log_probs)
        kl = aggregate_token_loss(k, b.mask, "seq-mean-token-sum")
        return _seq_is_reinforce(b) + BETA * kl

    return loss


def _mismatch(kind: str) -> Callable[[AuditBatch], torch.Tensor]:
    def loss(b: AuditBatch) -> torch.Tensor:
        log_r = (b.old_log_probs - b.rollout_log_probs) * b.mask  # π_old / μ per token
        if kind == "none":
            w = torch.ones_like(log_r)
        elif kind == "token-tis":
            w = log_r.exp().clamp(max=TIS_CAP)
        elif kind == "seq-tis":
            w = log_r.sum(1, keepdim=True).exp().clamp(max=TIS_CAP).expand_as(log_r)
        elif kind == "seq-mis":
            s = log_r.sum(1, keepdim=True).exp()
            w = torch.where(s <= TIS_CAP, s, torch.zeros_like(s)).expand_as(log_r)
        else:  # "seq-is"
            w = log_r.sum(1, keepdim=True).exp().expand_as(log_r)
        return policy_loss(b.log_probs, b.old_log_probs, w.detach() * _adv_rloo(b), b.mask,
                           objective="reinforce", aggregation="seq-mean-token-sum")[0]

    return loss


def builtin_losses() -> list[BuiltinLoss]:
    """The catalogue, in table order."""
    out: list[BuiltinLoss] = []
    for adv in ADVANTAGES:
        for agg in POLICY_AGGREGATIONS:
            out.append(BuiltinLoss(f"{adv} · {agg}", "advantage × aggregation (on-policy)",
                                   _policy("reinforce", agg, adv), False, f"−Â·log π, Â = {adv}, {agg}"))
    for obj in OBJECTIVES:
        for agg in POLICY_AGGREGATIONS:
            out.append(BuiltinLoss(f"{obj} · {agg}", "objective × aggregation (off-policy, RLOO)",
                                   _policy(obj, agg, "RLOO"), "old", f"{obj}, RLOO advantages, {agg}, y ~ π_old"))
    for est in ("k1", "k2", "k3"):
        out.append(BuiltinLoss(f"{est} in reward", "KL (β = 0.1)", _kl_reward(est), False,
                               f"R − β Σₜ {est}ₜ (detached), score function"))
    for off in (False, "old"):
        where = "on-policy" if off is False else "off-policy"
        for ratio in (False, True):
            for est in ("k1", "k2", "k3"):
                tag = f"{est}·ρₜ" if ratio else est
                out.append(BuiltinLoss(f"{tag} in loss, {where}", "KL (β = 0.1)", _kl_loss(est, ratio), off,
                                       f"β Σₜ {tag} added to the loss; y ~ {'π' if off is False else 'π_old'}"))
    for kind, label in (("none", "no correction"), ("token-tis", "token TIS"), ("seq-tis", "sequence TIS"),
                        ("seq-mis", "sequence MIS"), ("seq-is", "sequence IS (untruncated)")):
        out.append(BuiltinLoss(f"mismatch: {label}", "rollout mismatch (y ~ μ ≠ π_old = π, RLOO)",
                               _mismatch(kind), "rollout", f"weight {label}, C = {TIS_CAP:g}"))
    return out


def audit_builtin(*, progress: bool | None = None, only: str | None = None, seed: int = 0,
                  **sizes: int) -> list[tuple[BuiltinLoss, LossAudit]]:
    """Audit every catalogue entry (``only``: those whose name contains it) at :data:`BUILTIN_SIZES`
    (overridden by ``sizes``). A progress bar on standard error when it is a terminal and rich is
    installed (``progress=None``), or as ``progress`` says."""
    opts = {**BUILTIN_SIZES, **sizes}
    entries = [e for e in builtin_losses() if only is None or only in e.name]
    results: list[tuple[BuiltinLoss, LossAudit]] = []

    def run(e: BuiltinLoss) -> None:
        results.append((e, audit_loss(e.loss_fn, off_policy=e.off_policy, seed=seed, name=e.name,
                                      exchangeable=True, **opts)))

    if progress is None:
        import importlib.util
        import sys

        progress = sys.stderr.isatty() and importlib.util.find_spec("rich") is not None
    if not progress:
        for e in entries:
            run(e)
        return results
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("pgmath audit --builtin", total=len(entries))
        for e in entries:
            bar.update(task, description=e.name)
            run(e)
            bar.advance(task)
    return results


def builtin_table(results: list[tuple[BuiltinLoss, LossAudit]]) -> tuple[list[str], list[list[str]]]:
    """(columns, rows): one row per entry, a coefficient per target, the residual and the verdict."""
    columns = ["section", "loss", *TARGETS, "residual", "verdict"]
    rows = []
    for e, a in results:
        cells = []
        for k in TARGETS:
            if k in a.collinear:
                cells.append("≡")
            elif k in a.varies:
                vals = [p[k] for p in a.per_point]
                cells.append(f"varies {min(vals):.3g}…{max(vals):.3g}")
            else:
                c = a.coefficients[k]
                cells.append("0" if c is None or abs(c) < 5e-13 else f"{c:.6g}")
        rows.append([e.section, e.name, *cells, f"{a.residual:.2g}", _short(a)])
    return columns, rows


def _short(a: LossAudit) -> str:
    if a.zero:
        return "zero"
    if a.exact:
        return "exact"
    if a.varies:
        return "no fixed multiple"
    return "residual"
