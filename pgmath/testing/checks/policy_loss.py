"""``check_policy_loss``: an LLM-RL policy loss (PPO, CISPO, GSPO, GSPO-token, GMPO, REINFORCE, any
aggregation), its value and its gradients, against the reference loop of the ``policy_loss`` spec
(:mod:`pgmath.specs.llm_policy_loss`).

The function under test is called ``fn(log_probs, old_log_probs, advantages, mask)`` with
``[B, L]`` tensors and returns the scalar loss or ``(loss, anything)``; *its* settings are bound in
``fn`` (a ``functools.partial`` or a lambda), the check's keywords describe the reference it is
compared with.

What is compared, on Hypothesis-generated batches and then on the edge cases:

* the loss value (``values=True``), within atol + rtol·scale, scale = Σ w·(ρ̄ + 1 + c)·|Â|·(1 + |log π|);
* (``gradients=True``) ∂loss/∂log_probs entry by entry (entries on a clip boundary, where the
  gradient jumps, are skipped), and ∂loss/∂old_log_probs, ∂loss/∂advantages, which must be 0:
  both are passed as tensors that require grad. A function that *refuses* such constants with an
  exception conforms: the check then passes them detached and says so in the report.
* an all-masked batch must raise or give a finite loss with finite gradients.

The check runs at float64 and at float32 (unless ``dtype=`` is given), with tolerances from the
machine epsilon of the coarser of the input's and the output's dtype.

On a mismatch the message names what the function *does* compute when a member of the family
reproduces it (:mod:`pgmath.testing.diagnosis`): another objective, aggregation or clip setting,
its first two arguments swapped, or the reference in float32 arithmetic; only when none does, a
catalogued bug of the spec that reproduces it.

Checked by: ``tests/test_testing_policy_loss.py`` (the reference passes every objective ×
aggregation at float32 and float64; every wrong variant of the spec is rejected; refusal accepted;
the diagnoses).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pgmath.testing.checks.core import (
    CheckOptions,
    CheckReport,
    call_user,
    mismatched,
    resolve_options,
    run_cases,
    target_name,
)
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.diagnosis import NEAR_ADVICE, Candidate, float32_valued, search_family
from pgmath.testing.report import Mismatch, flat_table, fmt_pair, tolerance_line, which_input

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields

__all__ = ["REFERENCE", "PolicyCase", "check_policy_loss", "policy_batches", "policy_edge_cases"]

#: What the loss is compared with: the policy_loss spec's reference loop.
REFERENCE = "pgmath.specs.llm_policy_loss.policy_loss_reference"

#: log-ratios the generated batches draw from (both sides of every clip range, and far out).
LOG_RATIOS = (-2.0, -1.5, -0.5, -0.1, 0.0, 0.1, 0.25, 0.5, 1.5, 2.0)


@dataclass(frozen=True)
class PolicyCase:
    """``[B, L]`` log π_θ, log π_old, Â and the response mask."""

    log_probs: torch.Tensor
    old_log_probs: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    label: str = ""

    def __repr__(self) -> str:
        parts = [repr(self.label)] if self.label else []
        parts += [f"{f.name}={getattr(self, f.name).tolist()}" for f in dataclasses.fields(self) if f.name != "label"]
        return f"PolicyCase({', '.join(parts)})"


def policy_batches(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu", *,
                   max_B: int = 4, max_L: int = 6, per_sequence: bool = False,
                   nan_pads: bool = True) -> st.SearchStrategy[PolicyCase]:
    """Hypothesis strategy of :class:`PolicyCase`: masks with gaps and empty rows, log-ratios
    from :data:`LOG_RATIOS`, per-token or (always, with ``per_sequence``) per-sequence
    advantages, NaN in some padding."""

    @st.composite
    def draw(d):
        B, L = d(st.integers(1, max_B)), d(st.integers(1, max_L))
        m = d(arrays(np.bool_, (B, L)))
        if not m.any():
            m[d(st.integers(0, B - 1)), d(st.integers(0, L - 1))] = True
        lp = -d(arrays(np.float64, (B, L), elements=st.integers(0, 16).map(lambda i: i / 4)))
        step = d(arrays(np.float64, (B, L), elements=st.sampled_from(LOG_RATIOS)))
        adv = d(arrays(np.float64, (B, L), elements=st.integers(-12, 12).map(lambda i: i / 4)))
        if per_sequence or d(st.booleans()):
            adv = np.repeat(adv[:, :1], L, axis=1)
        old = lp - step
        if nan_pads and d(st.booleans()):
            lp, old, adv = (np.where(m, x, np.nan) for x in (lp, old, adv))
        t = {"dtype": dtype, "device": device}
        return PolicyCase(torch.tensor(lp, **t), torch.tensor(old, **t), torch.tensor(adv, **t),
                          torch.tensor(m, device=device))

    return draw()


def per_sequence(case: PolicyCase) -> PolicyCase:
    """``case`` with each row's advantages replaced by the row's first response token's."""
    m = case.mask
    first = torch.where(m.any(1), m.to(torch.int64).argmax(1), torch.zeros(m.shape[0], dtype=torch.int64))
    adv = case.advantages.gather(1, first.unsqueeze(1)).expand_as(case.advantages).clone()
    return dataclasses.replace(case, advantages=adv)


def policy_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[PolicyCase]:
    """Every branch: ratios far above / below the range with both signs of Â (a hard-coded dual
    clip shows), padding, an empty response, different lengths (every aggregation differs),
    identical policies, per-sequence advantages."""
    t = {"dtype": dtype, "device": device}

    def mk(label, log_r, adv, mask, lp=None):
        mask = torch.tensor(mask, device=device)
        log_r = torch.tensor(log_r, **t)
        lp = torch.tensor(lp, **t) if lp is not None else -0.5 - 0.25 * torch.arange(log_r.numel(), **t).reshape(log_r.shape) % 2.0
        return PolicyCase(lp, lp - log_r, torch.tensor(adv, **t), mask, label)

    T, F = True, False
    return [
        mk("ratio far above the range with Â < 0 and Â > 0 (ρ = e^1.5, e²)",
           [[1.5, 2.0, 0.0], [1.5, 2.0, 0.1]], [[-1.0, -1.0, -1.0], [2.0, 2.0, 2.0]], [[T, T, T], [T, T, T]]),
        mk("ratio far below the range with Â < 0 and Â > 0 (ρ = e^−1.5, e^−2)",
           [[-1.5, -2.0, 0.0], [-1.5, -2.0, -0.1]], [[-1.0, -1.0, -1.0], [2.0, 2.0, 2.0]], [[T, T, T], [T, T, T]]),
        mk("responses of lengths 1 and 4, padding, an empty response",
           [[0.1, 0.0, 0.0, 0.0], [0.25, -0.5, 0.1, -0.1], [0.0, 0.0, 0.0, 0.0]],
           [[1.5, 0.0, 0.0, 0.0], [-0.5, -0.5, -0.5, -0.5], [0.0, 0.0, 0.0, 0.0]],
           [[T, F, F, F], [T, T, T, T], [F, F, F, F]]),
        mk("identical policies (ρ = 1), per-token advantages",
           [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[1.0, -0.5, 2.0], [0.25, -1.0, 0.0]], [[T, T, F], [T, T, T]]),
        mk("every clip region in one batch, per-token advantages",
           [[0.5, -0.5, 0.1, 1.5], [-1.5, 0.25, -0.1, 2.0]], [[1.0, -1.0, 0.5, -2.0], [1.5, 2.0, -0.75, 1.0]],
           [[T, T, T, T], [T, T, F, T]]),
    ]


def all_masked_case(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> PolicyCase:
    """Every token masked out (an all-padding micro-batch)."""
    t = {"dtype": dtype, "device": device}
    return PolicyCase(torch.tensor([[-0.3, -1.4]], **t), torch.tensor([[-0.5, -1.0]], **t),
                      torch.tensor([[1.0, -1.0]], **t), torch.zeros(1, 2, dtype=torch.bool, device=device),
                      "every token masked")


# ---------------------------------------------------------------------------------------------
# the reference and its family


@dataclass(frozen=True)
class PolicySettings:
    """The reference's settings (the check's keywords)."""

    objective: str = "ppo"
    aggregation: str = "token-mean"
    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    dual_clip: float | None = None
    normalizer: float | None = None
    num_sequences: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self, base: PolicySettings | None = None) -> str:
        """``objective='ppo', aggregation='…'`` plus the settings that differ from ``base``."""
        kw = self.kwargs()
        shown = {"objective", "aggregation"}
        if base is not None:
            shown |= {k for k, v in kw.items() if base.kwargs()[k] != v}
        return ", ".join(f"{k}={kw[k]!r}" for k in kw if k in shown)


def reference_fn(s: PolicySettings, *, fast: bool = False) -> Callable[..., torch.Tensor]:
    """The reference loss in the check's calling convention (the spec's loop, or the fast
    :func:`pgmath.llm.policy_loss`, verified equal by the spec, for the family search)."""
    if fast:
        from pgmath.llm.policy_loss import policy_loss

        return lambda lp, old, adv, m: policy_loss(lp, old, adv, m, **s.kwargs())[0]
    from pgmath.specs.llm_policy_loss import policy_loss_reference

    return lambda lp, old, adv, m: policy_loss_reference(lp, old, adv, m, **s.kwargs())


def _width_normalizer(x: PolicySettings) -> Callable[..., torch.Tensor]:
    from pgmath.llm.policy_loss import policy_loss

    def fn(lp, old, adv, m):
        return policy_loss(lp, old, adv, m, **{**x.kwargs(), "normalizer": float(m.shape[1])})[0]

    return fn


def _rows_counted(x: PolicySettings) -> Callable[..., torch.Tensor]:
    from pgmath.llm.policy_loss import policy_loss

    def fn(lp, old, adv, m):
        kw = {**x.kwargs(), "num_sequences": float(m.shape[0])}
        return policy_loss(lp, old, adv, m, **kw)[0]

    return fn


def _family(s: PolicySettings, width: int) -> Iterator[Candidate]:
    """Simplest first: float32 arithmetic; another aggregation; another clip setting; another
    objective (× aggregation); the first two arguments swapped."""
    from pgmath.llm.policy_loss import OBJECTIVES, POLICY_AGGREGATIONS

    ref32 = reference_fn(s, fast=True)
    yield Candidate("the reference computed in float32 arithmetic",
                    lambda lp, old, adv, m: ref32(lp.float(), old.float(), adv.float(), m),
                    "it differs only at float32 round-off: pass dtype=torch.float32 (or a looser rtol)", 2e-5,
                    float32_valued)
    yield Candidate("the reference to within 2e-6 relative", reference_fn(s, fast=True), NEAR_ADVICE, 2e-6)

    def norm(agg: str) -> float | None:
        if agg != "seq-mean-token-sum-norm":
            return None
        return s.normalizer if s.normalizer is not None else float(width)

    def with_(**kw: Any) -> PolicySettings:
        out = dataclasses.replace(s, **kw)
        if out.objective != "ppo":
            out = dataclasses.replace(out, dual_clip=None)
        if out.aggregation != s.aggregation:
            out = dataclasses.replace(out, normalizer=norm(out.aggregation), num_sequences=None)
        return out

    clips = [{}]
    if s.clip_eps_high is not None:
        clips.append({"clip_eps_high": None})
    if s.objective == "ppo":
        clips.append({"dual_clip": None} if s.dual_clip is not None else {"dual_clip": 3.0})
    settings = [with_(aggregation=a) for a in POLICY_AGGREGATIONS if a != s.aggregation]

    settings += [with_(**c) for c in clips[1:]]
    settings += [with_(objective=o, aggregation=a, **c) for o in OBJECTIVES if o != s.objective
                 for a in POLICY_AGGREGATIONS for c in clips]
    if s.aggregation == "seq-mean-token-sum-norm":  # C = the padded width L (verl's default)
        yield Candidate(f"{s.describe()} with normalizer = L, the padded width", _width_normalizer(s))
    for x in settings[:len(POLICY_AGGREGATIONS) - 1]:
        yield Candidate(x.describe(s), reference_fn(x, fast=True))
    for x in [s, *settings[:len(POLICY_AGGREGATIONS) - 1]]:
        if x.aggregation.startswith("seq-mean"):  # B' = every row, empty responses included
            # 2e-6: also when an ε in a denominator comes with it (verl's geo_mean, TRL's grpo)
            yield Candidate(f"{x.describe(s)} with num_sequences = B (empty responses counted)",
                            _rows_counted(x), rtol=2e-6)
    for x in settings[len(POLICY_AGGREGATIONS) - 1:]:
        yield Candidate(x.describe(s), reference_fn(x, fast=True))
    for x in [s, *settings[:len(POLICY_AGGREGATIONS) - 1]]:
        f = reference_fn(x, fast=True)
        yield Candidate(f"{x.describe(s)} with log_probs and old_log_probs swapped",
                        lambda lp, old, adv, m, f=f: f(old, lp, adv, m))


# ---------------------------------------------------------------------------------------------
# observing a loss


@dataclass
class Observation:
    """What a loss gave on one input: its value, and its gradients when they were compared."""

    value: np.ndarray  # [1]
    grads: list[np.ndarray]  # ∂/∂log π, then ∂/∂old, ∂/∂Â when they were passed requiring grad
    eps: float

    def flat(self) -> np.ndarray:
        return np.concatenate([self.value.reshape(-1), *[g.reshape(-1) for g in self.grads]])


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def observe(fn: Callable[..., Any], case: PolicyCase, *, gradients: bool, constants_grad: bool) -> Observation:
    """Call ``fn`` on fresh leaves; with ``gradients`` differentiate the loss with respect to
    log π (and to old log π and Â when ``constants_grad``: they are then passed requiring grad)."""
    lp = case.log_probs.detach().clone().requires_grad_(gradients)
    old, adv = (x.detach().clone().requires_grad_(gradients and constants_grad)
                for x in (case.old_log_probs, case.advantages))
    out = fn(lp, old, adv, case.mask)
    loss = out[0] if isinstance(out, (tuple, list)) else out
    value, eps = to_numpy(loss, "the loss")
    if value.size != 1:
        raise Mismatch("loss not scalar", lambda: f"the loss has shape {value.shape}; a scalar is needed")
    if not gradients:
        return Observation(value.reshape(1), [], eps)
    leaves = [lp, old, adv] if constants_grad else [lp]
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:  # a constant: zero gradients
        return Observation(value.reshape(1), [np.zeros(tuple(x.shape)) for x in leaves], eps)
    gs = torch.autograd.grad(loss.reshape(()), leaves, allow_unused=True)
    return Observation(value.reshape(1), [_np(torch.zeros_like(x) if g is None else g) for g, x in zip(gs, leaves)], eps)


def _kinks(s: PolicySettings, case: PolicyCase) -> np.ndarray:
    """Entries whose gradient is not defined (a ratio on a clip boundary): never compared."""
    lo, hi = s.clip_eps, s.clip_eps if s.clip_eps_high is None else s.clip_eps_high
    log_r = _np(case.log_probs) - _np(case.old_log_probs)
    m = case.mask.cpu().numpy()
    near = np.zeros(log_r.shape, dtype=bool)
    if s.objective == "gmpo":
        bounds = [-lo, hi]
        vals = log_r
    else:
        bounds = [math.log(1 - lo), math.log(1 + hi), *([math.log(s.dual_clip)] if s.dual_clip else [])]
        vals = log_r
        if s.objective in ("gspo", "gspo-token"):
            with np.errstate(invalid="ignore"):
                seq = np.where(m, log_r, 0).sum(1, keepdims=True) / np.maximum(m.sum(1, keepdims=True), 1)
            vals = np.repeat(seq, log_r.shape[1], axis=1)
    for b in bounds:
        near |= np.abs(vals - b) < 1e-6
    return near & m


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass(frozen=True)
class _Setup:
    settings: PolicySettings
    values: bool
    gradients: bool
    fname: str
    constants_grad: bool = True
    per_sequence: bool = False
    refused: list[str] = dataclasses.field(default_factory=list)  # labels where constants were refused

    @property
    def label(self) -> str:
        return f"check_policy_loss({self.settings.describe(PolicySettings())})"


def _scale(s: PolicySettings, case: PolicyCase) -> tuple[float, np.ndarray]:
    """(value scale, per-entry gradient scale): Σ w(ρ̄ + 1 + c)|Â|(1 + |log π|) over the tokens."""
    from pgmath.llm.policy_loss import policy_loss_weights

    m = case.mask.cpu()
    w = policy_loss_weights(m, s.aggregation, normalizer=s.normalizer, num_sequences=s.num_sequences).numpy()
    mm = m.numpy()
    lp, old, adv = (np.where(mm, _np(x), 0.0) for x in (case.log_probs, case.old_log_probs, case.advantages))
    rho_bar = float(np.exp(np.abs(lp - old)).max(initial=1.0))
    amax = float(np.abs(adv).max(initial=0.0))
    per = w * (rho_bar + 1 + (s.dual_clip or 0.0)) * (np.abs(adv) + amax) * (1 + np.abs(lp))
    grad_scale = np.full(lp.shape, float(per.max(initial=0.0)) + float(w.max(initial=0.0)) * amax * rho_bar)
    return float(per.sum()), grad_scale


def _table(case: PolicyCase, rows: list[tuple[str, np.ndarray]], marks: set[int]) -> str:
    lp, old = _np(case.log_probs), _np(case.old_log_probs)
    cols = [("mask", case.mask.cpu().numpy()), ("log_probs", lp), ("old_log_probs", old),
            ("ratio", np.exp(lp - old)), ("advantages", _np(case.advantages)), *rows]
    shape = tuple(case.log_probs.shape)
    return (f"The {which_input(case.label)}, {case.log_probs.dtype}, [B, L] = {list(shape)} "
            f"(entries in row-major order):\n" + flat_table(cols, marks))


def _problems(s: _Setup, case: PolicyCase, got: Observation, exp: Observation, rt: float, at: float) -> tuple[list[str], set[int]]:
    vscale, gscale = _scale(s.settings, case)
    problems: list[str] = []
    marks: set[int] = set()
    if s.values and not abs(got.value[0] - exp.value[0]) <= at + rt * vscale:
        problems.append(f"  loss: {fmt_pair(exp.value[0], got.value[0])}")
    if not s.gradients:
        return problems, marks
    names = ("log_probs", "old_log_probs", "advantages")
    skip = _kinks(s.settings, case).reshape(-1)
    for k, (g, e) in enumerate(zip(got.grads, exp.grads)):
        bad = mismatched(g.reshape(-1), e.reshape(-1), gscale.reshape(-1), rt, at) & ~skip
        for i in np.flatnonzero(bad)[:4]:
            why = "" if k == 0 else f"; {names[k]} must be treated as a constant (detached)"
            problems.append(f"  ∂loss/∂{names[k]} at entry {i}: {fmt_pair(e.reshape(-1)[i], g.reshape(-1)[i])}{why}")
        marks |= set(np.flatnonzero(bad).tolist())
    return problems, marks


def _all_masked(s: _Setup, fn: Callable[..., Any], case: PolicyCase) -> None:
    """Raising is right; a returned loss (and its gradients) must be finite."""
    try:
        obs = observe(fn, case, gradients=s.gradients, constants_grad=False)
    except Exception:  # a clear refusal of an empty selection conforms
        return
    if np.isfinite(obs.flat()).all():
        return
    raise Mismatch("all-masked batch gave a non-finite loss", lambda: (
        f"{s.label}: {s.fname} failed on the edge case 'every token masked': expected an exception "
        f"(pgmath raises ValueError) or a finite loss with finite gradients, got {obs.value.tolist()} — "
        "a masked mean dividing by mask.sum() = 0 gives NaN, which poisons the update\n" + _table(case, [], set())))


def _observe_user(s: _Setup, fn: Callable[..., Any], case: PolicyCase) -> tuple[Observation, bool]:
    """The user's observation, and whether constants are compared (False when it refused
    old_log_probs / advantages that require grad — a clear refusal conforms)."""
    if not s.gradients or not s.constants_grad:
        return observe(fn, case, gradients=s.gradients, constants_grad=False), False
    try:
        return observe(fn, case, gradients=True, constants_grad=True), True
    except Mismatch:
        raise
    except Exception:
        obs = observe(fn, case, gradients=True, constants_grad=False)  # raises again if not a refusal
        s.refused.append(case.label or "generated")
        return obs, False


def _body(s: _Setup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[PolicyCase], None]:
    def header() -> str:
        return f"{s.label}: {s.fname} failed"

    def body(case: PolicyCase) -> None:
        if not bool(case.mask.any()):
            return _all_masked(s, fn, case)

        def describe() -> str:
            return _table(case, [], set())

        got, with_constants = call_user(lambda: _observe_user(s, fn, case), header, describe)
        ref = reference_fn(s.settings)
        exp = observe(ref, dataclasses.replace(case, log_probs=case.log_probs.double(),
                                               old_log_probs=case.old_log_probs.double(),
                                               advantages=case.advantages.double()),
                      gradients=s.gradients, constants_grad=with_constants)
        if not s.values:
            got.value, exp.value = exp.value * 0, exp.value * 0
        rt, at = opts.tolerances(max(got.eps, output_eps(case.log_probs.dtype)), 4 * case.log_probs.shape[1])
        problems, marks = _problems(s, case, got, exp, rt, at)
        if not problems:
            return

        def render() -> str:
            def obs_of(f: Callable[..., Any]) -> np.ndarray:
                o = observe(f, case, gradients=s.gradients, constants_grad=with_constants)
                return o.flat() if s.values else np.concatenate([g.reshape(-1) for g in o.grads])

            got_flat = got.flat() if s.values else np.concatenate([g.reshape(-1) for g in got.grads])
            exp_flat = exp.flat() if s.values else np.concatenate([g.reshape(-1) for g in exp.grads])
            confirm = _confirm_on_edges(s, fn, case)
            diag = search_family(got_flat, exp_flat, _family(s.settings, case.mask.shape[1]), obs_of,
                                 lambda c: confirm(c.fn))
            if not diag:
                diag = _catalogued(s, case, got_flat, exp_flat, obs_of, confirm)
            rows = []
            if s.gradients:
                rows = [("expected ∂L/∂logπ", exp.grads[0]), ("got ∂L/∂logπ", got.grads[0])]
            return "\n".join([f"{s.label}: {s.fname} disagrees with {REFERENCE}:", *problems,
                              _table(case, rows, marks), *([diag] if diag else []), tolerance_line(rt, at)])

        raise Mismatch(problems[0].strip(), render)

    return body


def _confirm_on_edges(s: _Setup, fn: Callable[..., Any], case: PolicyCase) -> Callable[[Callable[..., Any]], bool]:
    """``confirm(candidate)``: the candidate also reproduces ``fn`` on every edge case (at the
    counterexample's dtype) on which ``fn`` runs."""
    from pgmath.testing.diagnosis import same_output

    edges = policy_edge_cases(case.log_probs.dtype, case.log_probs.device)
    if s.per_sequence:
        edges = [per_sequence(e) for e in edges]
    user: dict[int, np.ndarray | None] = {}

    def obs(f: Callable[..., Any], e: PolicyCase) -> np.ndarray:
        constants = s.gradients and s.constants_grad and user.get(-1) is None
        return observe(f, e, gradients=s.gradients, constants_grad=constants).flat()

    def user_obs(i: int, e: PolicyCase) -> np.ndarray | None:
        if i not in user:
            try:
                user[i] = obs(fn, e)
            except Exception:  # refusing constants that require grad, or any other refusal
                user[-1] = np.zeros(0)
                try:
                    user[i] = obs(fn, e)
                except Exception:  # an input the function refuses confirms nothing either way
                    user[i] = None
        return user[i]

    def confirm(candidate: Callable[..., Any]) -> bool:
        for i, e in enumerate(edges):
            want = user_obs(i, e)
            if want is None:
                continue
            try:
                if not same_output(want, obs(candidate, e), 1e-5):
                    return False
            except Exception:  # a candidate that cannot run there does not reproduce it
                return False
        return True

    return confirm


def _catalogued(s: _Setup, case: PolicyCase, got: np.ndarray, exp: np.ndarray,
                obs_of: Callable[[Callable[..., Any]], np.ndarray],
                confirm: Callable[[Callable[..., Any]], bool]) -> str:
    """The catalogued bugs (the spec's wrong variants) that reproduce the output, if any."""
    from pgmath.testing.diagnosis import same_output
    from pgmath.testing.mutants import catalogue

    kw = s.settings.kwargs()
    names = []
    for m in catalogue():
        if m.check != "check_policy_loss" or not m.applies(kw):
            continue
        try:
            out = obs_of(functools.partial(m.fn, **kw))
        except Exception:  # a mutant that cannot run on this input does not match it
            continue
        if same_output(got, out, 1e-6) and not same_output(out, exp, 1e-6) and confirm(
                functools.partial(m.fn, **kw)):
            names.append(f"{m.name} ({m.bug})")
    if not names:
        return ""
    return "Your output reproduces the known bug(s) of pgmath.testing.mutants: " + "; ".join(names)


def check_policy_loss(
    fn: Callable[..., Any],
    *,
    objective: str = "ppo",
    aggregation: str = "token-mean",
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    normalizer: float | None = None,
    num_sequences: float | None = None,
    values: bool = True,
    gradients: bool = True,
    per_sequence_advantages: bool = False,
    nan_pads: bool = True,
    constants_require_grad: bool = True,
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check ``fn(log_probs, old_log_probs, advantages, mask) -> loss | (loss, …)`` (``[B, L]``
    tensors) against :func:`pgmath.llm.policy_loss` with these settings (the spec's reference loop).

    ``objective``, ``aggregation``, ``clip_eps``, ``clip_eps_high``, ``dual_clip``, ``normalizer``,
    ``num_sequences``: the reference's settings (as :func:`pgmath.llm.policy_loss`). ``values``,
    ``gradients``: what is compared (gradients: ∂/∂log π against the reference's; ∂/∂old and ∂/∂Â
    must be 0, or the function may refuse constants that require grad). ``per_sequence_advantages``:
    every input has one advantage per response (broadcast over its tokens), the domain of
    sequence-level objectives written for GRPO-style advantages. ``nan_pads`` (default True): half
    the generated batches hold NaN in the padding, which a correct loss never reads; pass False for
    a function that multiplies by the mask and so needs finite padding. ``constants_require_grad``
    (default True): pass ``old_log_probs`` and ``advantages`` requiring grad (their gradient must
    be 0, or refused); False passes them detached, for a pipeline that guarantees it. ``options`` and
    ``**overrides`` as :func:`~pgmath.testing.check_gae`; without ``dtype=`` the check runs at
    float64 and float32. Returns a :class:`CheckReport`; raises ``AssertionError`` with the
    counterexample and a diagnosis on a mismatch.
    """
    from pgmath.llm.policy_loss import policy_loss

    settings = PolicySettings(objective, aggregation, clip_eps, clip_eps_high, dual_clip, normalizer, num_sequences)
    z = torch.zeros(1, 2, dtype=torch.float64)
    policy_loss(z, z, z, torch.ones(1, 2, dtype=torch.bool), **settings.kwargs())  # ValueError on bad settings
    if not (values or gradients):
        raise ValueError("values and gradients are both False: nothing to check")
    dtypes = [torch.float64, torch.float32] if "dtype" not in overrides and options is None else [None]
    t0 = time.perf_counter()
    calls, labels = 0, ()
    s = _Setup(settings, values, gradients, target_name(fn), constants_require_grad, per_sequence_advantages)
    for dtype in dtypes:
        opts = resolve_options(options, {**overrides, **({"dtype": dtype} if dtype is not None else {})})
        strat = opts.strategy if opts.strategy is not None else policy_batches(
            opts.dtype, opts.device, per_sequence=per_sequence_advantages, nan_pads=nan_pads)
        edges = [*policy_edge_cases(opts.dtype, opts.device), all_masked_case(opts.dtype, opts.device)]
        if per_sequence_advantages:
            edges = [per_sequence(e) for e in edges]
        n, labels = run_cases(strat, _body(s, fn, opts), edges, opts)
        calls += n
    report = CheckReport(s.label, s.fname, REFERENCE, "pgmath", calls, labels, time.perf_counter() - t0)
    if s.refused:
        report = dataclasses.replace(report, notes=(
            "the function refuses old_log_probs / advantages that require grad (a clear exception); "
            "it was then called with them detached",))
    return report
