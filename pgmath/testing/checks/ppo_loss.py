"""``check_ppo_loss``: a PPO clipped surrogate loss, its value and its gradients, against the
reference loop of the ``ppo_clip_loss`` spec (:mod:`pgmath.specs.losses`): L = −(1/n) Σ min(ρÂ,
clip(ρ, 1 − ε, 1 + ε_high)Â) over the selected entries, max(…, cÂ) where Â < 0 with the dual clip
(Schulman et al. 2017, eq. 7; Ye et al. 2020 for the dual clip).

The loss value must match within atol + rtol·scale, scale = mean of (|ρ| + 1 + c)|Â|; with
gradients (torch only) ∂L/∂log π must match the reference's (0 where the clip binds; entries on a
clip boundary, where the gradient jumps, are skipped) and ∂L/∂log π_old, ∂L/∂Â must be 0 (they are
constants). An all-masked batch must raise or give a finite loss with finite gradients.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pgmath.testing.checks.core import (
    CheckOptions,
    CheckReport,
    call_user,
    diagnosis_line,
    mismatched,
    resolve_options,
    run_cases,
    spec_reference,
    target_name,
)
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.edge_cases import PPOCase, ppo_all_masked, ppo_edge_cases
from pgmath.testing.report import Mismatch, flat_table, fmt, fmt_pair, tolerance_line, which_input
from pgmath.testing.strategies import logit_batches

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = ["REFERENCE", "PPOSetup", "check_ppo_loss"]

#: What the loss is compared with: the ppo_clip_loss spec's reference loop.
REFERENCE = "pgmath.specs.losses.ppo_clip_loss_reference"

Leaves = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # log_probs, old_log_probs, advantages


def _np(x: torch.Tensor) -> np.ndarray:
    """float64 NumPy copy (for the reference and the tables)."""
    return x.detach().cpu().double().numpy()


def _user_np(x: torch.Tensor) -> np.ndarray:
    """What a NumPy loss receives: the tensor's values in its own dtype."""
    return x.detach().cpu().numpy()


@dataclass(frozen=True)
class PPOSetup:
    """The loss's settings and how the check calls it (``"pgmath"`` or ``"rlax"`` convention)."""

    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    dual_clip: float | None = None
    convention: str = "pgmath"
    masked: bool = True
    gradients: bool = True
    arrays: str = "torch"

    @property
    def bounds(self) -> tuple[float, float]:
        """The clip range [1 − ε, 1 + ε_high]."""
        return 1 - self.clip_eps, 1 + (self.clip_eps if self.clip_eps_high is None else self.clip_eps_high)

    @property
    def settings(self) -> dict[str, Any]:
        """The check's keyword arguments (what a mutant's options are matched against)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "arrays"}

    def user_kwargs(self) -> dict[str, Any]:
        """The keywords passed to a pgmath-convention loss (the optional ones only when set)."""
        kw: dict[str, Any] = {"clip_eps": self.clip_eps}
        kw.update({k: v for k, v in (("clip_eps_high", self.clip_eps_high), ("dual_clip", self.dual_clip))
                   if v is not None})
        return kw

    def invoke(self, fn: Callable[..., Any], case: PPOCase) -> tuple[Any, Leaves]:
        """``(loss, (log_probs, old_log_probs, advantages))``, the leaves requiring grad when
        gradients are checked."""
        lp, old, adv = (x.detach().clone().requires_grad_(self.gradients)
                        for x in (case.log_probs, case.old_log_probs, case.advantages))
        np_in = self.arrays == "numpy"
        if self.convention == "pgmath":
            kw = self.user_kwargs()
            if self.masked:
                kw["mask"] = case.mask.cpu().numpy() if np_in else case.mask
            out = fn(*((_user_np(x) for x in (lp, old, adv)) if np_in else (lp, old, adv)), **kw)
        else:
            # rlax's loss takes [T] vectors (a time axis, no batch): a [B, L] grid is flattened
            # (its mask is all true under this convention, so no entry is lost)
            ratio, a = torch.exp(lp - old.detach()).reshape(-1), adv.reshape(-1)
            out = fn(*((_user_np(ratio), _user_np(a)) if np_in else (ratio, a)), self.clip_eps)
        return (out[0] if isinstance(out, (tuple, list)) else out), (lp, old, adv)

    def reference(self, case: PPOCase) -> tuple[float, np.ndarray]:
        """The reference loss (the spec's plain loop, float64, CPU) and its ∂L/∂log π."""
        lp = case.log_probs.detach().cpu().double().requires_grad_()
        loss = spec_reference("ppo_clip_loss")(
            lp, _np_t(case.old_log_probs), _np_t(case.advantages), mask=case.mask.cpu() if self.masked else None,
            clip_eps=self.clip_eps, clip_eps_high=self.clip_eps_high, dual_clip=self.dual_clip)
        (g,) = torch.autograd.grad(loss, lp)
        return float(loss.detach()), g.numpy()

    def table(self, case: PPOCase, rows: list[tuple[str, np.ndarray]], marks: set[int]) -> str:
        lp, old = _np(case.log_probs), _np(case.old_log_probs)
        cols = [("log_probs", lp), ("old_log_probs", old), ("ratio", np.exp(lp - old)),
                ("advantages", _np(case.advantages))]
        if self.masked:
            cols.append(("mask", case.mask.cpu().numpy()))
        lo, hi = self.bounds
        shape = tuple(case.log_probs.shape)
        note = f" (entries of the {shape} grid in row-major order)" if len(shape) > 1 else ""
        return (f"The {which_input(case.label)}, clip range [{fmt(lo)}, {fmt(hi)}]{note}:\n"
                + flat_table(cols + rows, marks))

    def explain(self, case: PPOCase, i: int) -> str:
        """Why the reference's ∂L/∂log πᵢ is what it is (which term of the min is active)."""
        r = math.exp(float(_np(case.log_probs).reshape(-1)[i] - _np(case.old_log_probs).reshape(-1)[i]))
        a = float(_np(case.advantages).reshape(-1)[i])
        if self.masked and not bool(case.mask.reshape(-1)[i]):
            return "the entry is masked out, so it gets no gradient"
        n = int(case.mask.sum()) if self.masked else case.log_probs.numel()
        lo, hi = self.bounds
        if a > 0 and r > hi:
            return f"ρ = {fmt(r)} > 1+ε = {fmt(hi)} with Â = {fmt(a)} > 0: the clip binds, so the gradient is 0"
        if a < 0 and r < lo:
            return f"ρ = {fmt(r)} < 1−ε = {fmt(lo)} with Â = {fmt(a)} < 0: the clip binds, so the gradient is 0"
        if self.dual_clip is not None and a < 0 and r > self.dual_clip:
            return f"Â = {fmt(a)} < 0 and ρ = {fmt(r)} > c = {fmt(self.dual_clip)}: the dual clip binds, so the gradient is 0"
        return f"the unclipped term ρÂ is the minimum (ρ = {fmt(r)}, Â = {fmt(a)}), so ∂L/∂log π = −ρÂ/n with n = {n}"

    def kinks(self, case: PPOCase) -> np.ndarray:
        """Entries whose ratio sits on a clip boundary (where the gradient is not defined)."""
        r = np.exp(_np(case.log_probs) - _np(case.old_log_probs)).reshape(-1)
        near = np.zeros(r.shape, dtype=bool)
        for b in (*self.bounds, *([self.dual_clip] if self.dual_clip is not None else [])):
            near |= np.isclose(r, b, rtol=1e-7)
        return near


def _np_t(x: torch.Tensor) -> torch.Tensor:
    return x.detach().cpu().double()


@dataclass
class _Found:
    """What the comparison found on one input."""

    problems: list[str]
    got: float
    expected: float
    grads: tuple[np.ndarray, ...] | None = None  # (∂/∂log π, ∂/∂old, ∂/∂Â), when compared
    expected_grad: np.ndarray | None = None
    rows: list[tuple[str, np.ndarray]] = dataclasses.field(default_factory=list)
    marks: set[int] = dataclasses.field(default_factory=set)


def _gradient_problems(setup: PPOSetup, case: PPOCase, loss: Any, leaves: Leaves, exp_g: np.ndarray,
                       scale: np.ndarray, rt: float, at: float, found: _Found) -> None:
    """Compare ∂L/∂log π with the reference's and ∂L/∂old, ∂L/∂Â with 0; record into ``found``."""
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
        found.problems.append("  the loss is not differentiable with respect to log_probs (no autograd graph)")
        return
    grads = torch.autograd.grad(loss.sum(), list(leaves), allow_unused=True)
    g_lp, g_old, g_adv = (_np(torch.zeros_like(x) if g is None else g).reshape(-1) for g, x in zip(grads, leaves))
    found.grads, found.expected_grad = (g_lp, g_old, g_adv), exp_g.reshape(-1)
    bad_lp = mismatched(g_lp, found.expected_grad, scale, rt, at) & ~setup.kinks(case)
    bad_old, bad_adv = ~(np.abs(g_old) <= at), ~(np.abs(g_adv) <= at)
    for i in np.flatnonzero(bad_lp)[:4]:
        found.problems.append(f"  ∂loss/∂log_probs at i={i}: {fmt_pair(found.expected_grad[i], g_lp[i])}; "
                              + setup.explain(case, int(i)))
    for nm, bad_x, g_x in (("old_log_probs", bad_old, g_old), ("advantages", bad_adv, g_adv)):
        found.problems += [f"  ∂loss/∂{nm} at i={i}: expected 0, got {fmt(g_x[i])}; {nm} must be treated "
                           "as constants (detached): no gradient may flow into them"
                           for i in np.flatnonzero(bad_x)[:3]]
    if bad_lp.any() or bad_old.any() or bad_adv.any():
        found.marks = set(np.flatnonzero(bad_lp | bad_old | bad_adv).tolist())
        found.rows = [("expected ∂L/∂logπ", found.expected_grad), ("got ∂L/∂logπ", g_lp)]
        found.rows += [(k, g) for k, g, b in (("got ∂L/∂old", g_old, bad_old), ("got ∂L/∂Â", g_adv, bad_adv)) if b.any()]


def _compare(setup: PPOSetup, case: PPOCase, loss: Any, leaves: Leaves, got: np.ndarray, eps_out: float,
             opts: CheckOptions) -> tuple[_Found, float, float]:
    exp_v, exp_g = setup.reference(case)
    rt, at = opts.tolerances(max(eps_out, output_eps(case.log_probs.dtype)), 4)
    ratio = np.exp(_np(case.log_probs) - _np(case.old_log_probs))
    n = max(int(case.mask.sum()) if setup.masked else ratio.size, 1)
    mag = (np.abs(ratio) + 1.0 + (setup.dual_clip or 0.0)) * np.abs(_np(case.advantages))
    found = _Found([], float(got.reshape(())), exp_v)
    if not abs(found.got - exp_v) <= at + rt * float(mag.sum() / n):
        found.problems.append(f"  loss: {fmt_pair(exp_v, found.got)}")
    if setup.gradients:
        _gradient_problems(setup, case, loss, leaves, exp_g, (mag / n).reshape(-1), rt, at, found)
    return found, rt, at


def _mutant_output(setup: PPOSetup, case: PPOCase, with_grads: bool) -> Callable[[Mutant], np.ndarray | None]:
    """A mutant's [loss, ∂/∂log π, ∂/∂old, ∂/∂Â] on ``case``, laid out as the check has them."""
    run_setup = dataclasses.replace(setup, arrays="torch", gradients=with_grads)

    def output(m: Mutant) -> np.ndarray | None:
        if setup.convention != "pgmath" or m.convention != "pgmath":
            return None
        loss, leaves = run_setup.invoke(m.fn, case)
        parts = [to_numpy(loss)[0].reshape(1)]
        if with_grads:
            grads = torch.autograd.grad(loss, list(leaves), allow_unused=True)
            parts += [_np(torch.zeros_like(x) if g is None else g).reshape(-1) for g, x in zip(grads, leaves)]
        return np.concatenate(parts)

    return output


def _family_line(setup: PPOSetup, got: np.ndarray, exp: np.ndarray,
                 output: Callable[[Any], np.ndarray | None]) -> str:
    """"Your output matches objective='cispo', aggregation='token-mean'": the members of the
    :func:`pgmath.llm.policy_loss` family (objective × aggregation, the clip-higher and dual-clip
    settings) in this check's calling convention, a ``[N]`` batch read as one row."""
    from pgmath.llm.policy_loss import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss
    from pgmath.testing.diagnosis import Candidate, search_family

    def member(**kw: Any) -> Callable[..., torch.Tensor]:
        def fn(lp, old, adv, *, clip_eps, clip_eps_high=None, dual_clip=None, mask=None):
            lp2, old2, adv2 = (x.reshape(1, -1) if x.dim() == 1 else x for x in (lp, old, adv))
            m = torch.ones_like(lp2, dtype=torch.bool) if mask is None else mask.reshape(lp2.shape)
            settings = {"clip_eps": clip_eps, "clip_eps_high": clip_eps_high, "dual_clip": dual_clip, **kw}
            if settings.get("objective", "ppo") != "ppo":
                settings["dual_clip"] = None
            return policy_loss(lp2, old2, adv2, m, **settings)[0]

        return fn

    cands = []
    base = {"objective": "ppo", "aggregation": "token-mean"}
    for agg in POLICY_AGGREGATIONS[1:]:
        if agg != "seq-mean-token-sum-norm":
            cands.append(Candidate(f"objective='ppo', aggregation={agg!r}", member(**{**base, "aggregation": agg})))
    if setup.dual_clip is None:
        cands.append(Candidate("objective='ppo' with dual_clip=3.0", member(**base, dual_clip=3.0)))
    if setup.clip_eps_high is not None:
        cands.append(Candidate("objective='ppo' without clip_eps_high", member(**base, clip_eps_high=None)))
    for obj in OBJECTIVES[1:]:
        for agg in ("token-mean", "seq-mean-token-mean"):
            cands.append(Candidate(f"objective={obj!r}, aggregation={agg!r}", member(objective=obj, aggregation=agg)))

    class _AsMutant:  # what ``output`` runs: a function in the pgmath convention
        convention = "pgmath"

        def __init__(self, fn: Callable[..., Any]):
            self.fn = fn

    return search_family(got, exp, cands, lambda f: output(_AsMutant(f)))


def _render(setup: PPOSetup, fname: str, case: PPOCase, f: _Found, rt: float, at: float) -> str:
    lines = [f"check_ppo_loss: {fname} (convention {setup.convention!r}) disagrees with {REFERENCE}:",
             *f.problems, setup.table(case, f.rows, f.marks)]
    if f.grads is None:
        got, exp = np.asarray([f.got]), np.asarray([f.expected])
    else:
        zeros = np.zeros(f.expected_grad.size)
        got = np.concatenate([[f.got], *f.grads])
        exp = np.concatenate([[f.expected], f.expected_grad, zeros, zeros])
    output = _mutant_output(setup, case, f.grads is not None)
    diag = _family_line(setup, got, exp, output) if setup.convention == "pgmath" else ""
    if not diag:  # a catalogued bug only when no member of the family reproduces the output
        diag = diagnosis_line("check_ppo_loss", got, exp, output, setup.settings)
    return "\n".join([*lines, *([diag] if diag else []), tolerance_line(rt, at)])


def _all_masked(setup: PPOSetup, fn: Callable[..., Any], case: PPOCase, fname: str) -> None:
    """Every entry masked: raising is right; a returned loss (and its gradients) must be finite."""
    try:
        loss, leaves = setup.invoke(fn, case)
        got, _ = to_numpy(loss, "the loss")
    except Exception:  # raising on an empty selection is a correct answer
        return
    grads_ok = True
    if setup.gradients and isinstance(loss, torch.Tensor) and loss.grad_fn is not None:
        gs = torch.autograd.grad(loss.sum(), list(leaves), allow_unused=True)
        grads_ok = all(g is None or bool(torch.isfinite(g).all()) for g in gs)
    if got.size == 1 and np.isfinite(got).all() and grads_ok:
        return
    raise Mismatch("all-masked batch gave a non-finite loss", lambda: (
        f"check_ppo_loss: {fname} (convention {setup.convention!r}) failed on the edge case "
        f"'every entry masked': expected an exception (pgmath raises ValueError) or a finite "
        f"loss with finite gradients, got loss {got.reshape(-1).tolist()}"
        + ("" if grads_ok else " with non-finite gradients")
        + " — a masked mean that divides by mask.sum() = 0 gives NaN, which poisons the update\n"
        + setup.table(case, [], set())))


def _body(setup: PPOSetup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[PPOCase], None]:
    fname = target_name(fn)

    def header() -> str:
        return f"check_ppo_loss: {fname} (convention {setup.convention!r}) failed"

    def body(case: PPOCase) -> None:
        if setup.masked and not bool(case.mask.any()):
            return _all_masked(setup, fn, case, fname)

        def describe() -> str:
            return setup.table(case, [], set())

        loss, leaves = call_user(lambda: setup.invoke(fn, case), header, describe)
        got, eps_out = call_user(lambda: to_numpy(loss, "the loss"), header, describe)
        if got.size != 1:
            raise Mismatch("loss not scalar", lambda: f"{header()}\n  the loss has shape {got.shape}; "
                           f"a scalar is needed\n{describe()}")
        found, rt, at = _compare(setup, case, loss, leaves, got, eps_out, opts)
        if found.problems:
            raise Mismatch(found.problems[0].strip(), lambda: _render(setup, fname, case, found, rt, at))

    return body


def _setup(clip_eps: float, clip_eps_high: float | None, dual_clip: float | None, convention: str,
           masked: bool, gradients: bool, arrays: str | None) -> PPOSetup:
    if convention not in ("pgmath", "rlax"):
        raise ValueError(f"convention must be 'pgmath' or 'rlax' for check_ppo_loss, got {convention!r}")
    if convention == "rlax" and (clip_eps_high is not None or dual_clip is not None):
        raise ValueError("the rlax convention has a symmetric clip: clip_eps_high and dual_clip must be None")
    # rlax is JAX: it cannot take torch tensors, so the convention defaults to NumPy arrays
    arrays = arrays or ("numpy" if convention == "rlax" else "torch")
    return PPOSetup(clip_eps, clip_eps_high, dual_clip, convention, masked and convention == "pgmath",
                    gradients and arrays == "torch", arrays)


def _cases(setup: PPOSetup, opts: CheckOptions) -> tuple[Any, list[PPOCase]]:
    """The strategy and the edge cases (masks all true when the loss takes no mask)."""

    def unmasked(c: PPOCase) -> PPOCase:
        return c if setup.masked else dataclasses.replace(c, mask=torch.ones_like(c.mask))

    strat = opts.strategy if opts.strategy is not None else logit_batches(
        dtypes=(opts.dtype,), devices=(opts.device,)
    ).map(lambda b: unmasked(PPOCase(b.log_probs, b.ref_log_probs, b.advantages, b.mask)))
    edges = [unmasked(c) for c in ppo_edge_cases(setup.clip_eps, setup.clip_eps_high, setup.dual_clip,
                                                 opts.dtype, opts.device)]
    if setup.masked:
        edges.append(ppo_all_masked(opts.dtype, opts.device))
    return strat, edges


def check_ppo_loss(
    fn: Callable[..., Any],
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    convention: str = "pgmath",
    masked: bool = True,
    gradients: bool = True,
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check a PPO clipped surrogate loss (its value and gradients) against the reference loop of
    :func:`pgmath.ppo_clip_loss` (``ppo_clip_loss_reference`` of :mod:`pgmath.specs.losses`).

    Conventions:
      ``"pgmath"``: ``fn(log_probs, old_log_probs, advantages, *, clip_eps[, clip_eps_high]
      [, dual_clip][, mask])`` returning the scalar loss to minimise, or ``(loss, info)``; the
      optional keywords are passed only when set (``mask`` only with ``masked=True``).
      ``"rlax"``: ``fn(prob_ratios_t, adv_t, epsilon)`` (rlax's ``clipped_surrogate_pg_loss``),
      symmetric clip, no mask; the check computes the ratio.

    With ``gradients=True`` (torch only) ``old_log_probs`` and ``advantages`` are passed as tensors
    that *require grad*: the loss must treat them as constants, so its gradient with respect to
    them must be 0, and its gradient with respect to ``log_probs`` must match the reference's
    (0 where the clip binds). With ``masked=True`` an all-masked batch must raise or give a finite
    loss (not NaN). ``options`` and ``**overrides`` as :func:`~pgmath.testing.check_gae`.
    """
    opts = resolve_options(options, overrides)
    setup = _setup(clip_eps, clip_eps_high, dual_clip, convention, masked, gradients, opts.arrays)
    t0 = time.perf_counter()
    strat, edges = _cases(setup, opts)
    calls, labels = run_cases(strat, _body(setup, fn, opts), edges, opts)
    return CheckReport("check_ppo_loss", target_name(fn), REFERENCE, convention, calls, labels,
                       time.perf_counter() - t0)
