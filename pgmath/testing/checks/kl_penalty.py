"""``check_kl_penalty``: a masked KL penalty (the loss term β·KL of GRPO-style trainers, before β),
its value and its gradient, against the ``kl_loss`` spec's reference (:mod:`pgmath.specs.llm_kl`):

    𝓛 = Σ_{b,t} w_{b,t} kₜ,  ℓₜ = log π − log π_ref,  k1 = ℓ, k2 = ℓ²/2, k3 = e^{−ℓ} − 1 + ℓ

(Schulman 2020, "Approximating KL divergence"), w the weights of ``aggregation`` ("token-sum" or
one of :data:`pgmath.llm.AGGREGATION_MODES`).

``fn(log_probs, ref_log_probs, mask)`` returns the scalar penalty (or ``(penalty, …)``); its
gradient with respect to ``log_probs`` must match the reference's and its gradient with respect to
``ref_log_probs`` (passed requiring grad) must be 0 — or the function may refuse such a constant
with an exception. Runs at float64 and float32 unless ``dtype=`` is given. A mismatch is diagnosed
by searching the family first (another estimator, the arguments swapped, another aggregation, k3
clamped to [−10, 10] as verl's ``low_var_kl``), then float32 arithmetic.

Checked by: ``tests/test_testing_token_checks.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from hypothesis import strategies as st

from pgmath.testing.checks.core import (
    CheckOptions,
    CheckReport,
    call_user,
    resolve_options,
    run_cases,
    target_name,
)
from pgmath.testing.checks.token_layout import (
    TokenCase,
    response_edge_cases,
    response_layouts,
    token_table,
)
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.diagnosis import Candidate, float32_valued, near_reference, search_family
from pgmath.testing.report import Mismatch, fmt_pair, tolerance_line

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields

__all__ = ["REFERENCE", "check_kl_penalty", "kl_penalty_reference"]

REFERENCE = "pgmath.specs.llm_kl.token_kl_reference, aggregated"
ESTIMATORS = ("k1", "k2", "k3")
NAMES = ("log_probs", "ref_log_probs")


def kl_penalty_reference(estimator: str, aggregation: str, *, normalizer: float | None = None,
                         num_sequences: float | None = None, clamp: float | None = None) -> Callable[..., torch.Tensor]:
    """``(log_probs, ref_log_probs, mask) -> Σ w k`` by the spec's per-token loop (``clamp``:
    k clamped to [−clamp, clamp], a family member only)."""
    from pgmath.specs.llm_kl import token_kl_reference
    from pgmath.specs.llm_policy_loss import policy_weights_reference

    def fn(lp: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.bool()
        zero = torch.zeros((), dtype=lp.dtype)
        k = token_kl_reference(torch.where(m, lp, zero), torch.where(m, ref.detach(), zero), m, estimator)
        if clamp is not None:
            k = k.clamp(-clamp, clamp)
        w = policy_weights_reference(m, aggregation, normalizer=normalizer, num_sequences=num_sequences,
                                     dtype=lp.dtype)
        return (torch.where(m, k, zero) * w).sum() + torch.where(m, lp, zero).sum() * 0

    return fn


def _observe(fn: Callable[..., Any], case: TokenCase, gradients: bool, constants: bool) -> tuple[np.ndarray, float]:
    lp = case.a.detach().clone().requires_grad_(gradients)
    ref = case.b.detach().clone().requires_grad_(gradients and constants)
    out = fn(lp, ref, case.mask)
    loss = out[0] if isinstance(out, (tuple, list)) else out
    v, eps = to_numpy(loss, "the penalty")
    if v.size != 1:
        raise Mismatch("penalty not scalar", lambda: f"the penalty has shape {v.shape}; a scalar is needed")
    parts = [v.reshape(1)]
    if gradients:
        leaves = [lp, ref] if constants else [lp]
        if isinstance(loss, torch.Tensor) and loss.grad_fn is not None:
            gs = torch.autograd.grad(loss.reshape(()), leaves, allow_unused=True)
            parts += [(torch.zeros_like(x) if g is None else g).detach().cpu().double().numpy().reshape(-1)
                      for g, x in zip(gs, leaves)]
        else:
            parts += [np.zeros(x.numel()) for x in leaves]
    return np.concatenate(parts), eps


def _family(estimator: str, aggregation: str, kw: dict[str, Any], width: int) -> Iterator[Candidate]:
    from pgmath.llm.policy_loss import POLICY_AGGREGATIONS

    def cand(desc: str, est: str = estimator, agg: str = aggregation, swap: bool = False,
             clamp: float | None = None) -> Candidate:
        k = {**kw} if agg == aggregation else {"normalizer": float(width) if agg.endswith("norm") else None}
        f = kl_penalty_reference(est, agg, clamp=clamp, **k)
        g = (lambda lp, ref, m: f(ref, lp, m)) if swap else f
        return Candidate(desc, g)

    ref = kl_penalty_reference(estimator, aggregation, **kw)
    yield Candidate("the reference computed in float32 arithmetic",
                    lambda lp, ref_lp, m: ref(lp.float(), ref_lp.float(), m),
                    "it differs only at float32 round-off: pass dtype=torch.float32 (or a looser rtol)", 2e-5,
                    float32_valued)
    yield near_reference(ref)
    yield cand(f"{estimator} with its two arguments swapped", swap=True)
    for e in ESTIMATORS:
        if e != estimator:
            yield cand(f"estimator {e!r}", est=e)
            yield cand(f"estimator {e!r} with its two arguments swapped", est=e, swap=True)
    for a in POLICY_AGGREGATIONS:
        if a != aggregation:
            yield cand(f"{estimator}, aggregation={a!r}", agg=a)
    yield cand(f"{estimator} with each token's estimate clamped to [−10, 10]", clamp=10.0)
    yield cand(f"{estimator} with its two arguments swapped, clamped to [−10, 10]", swap=True, clamp=10.0)


def _scale(estimator: str, case: TokenCase, w: np.ndarray) -> tuple[float, float]:
    m = case.mask.cpu().numpy()
    ell = np.where(m, case.a.detach().cpu().double().numpy() - case.b.detach().cpu().double().numpy(), 0.0)
    per = 1 + np.abs(ell) + ell ** 2 + np.exp(np.abs(ell))
    return float((w * per).sum()), float((w * per).max(initial=0.0))


def check_kl_penalty(
    fn: Callable[..., Any],
    estimator: str = "k3",
    *,
    aggregation: str = "token-mean",
    normalizer: float | None = None,
    num_sequences: float | None = None,
    gradients: bool = True,
    nan_pads: bool = True,
    constants_require_grad: bool = True,
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check ``fn(log_probs, ref_log_probs, mask) -> penalty`` (``[B, L]`` inputs in the response
    layout) against Σ w·k of ``estimator`` ("k1", "k2", "k3") and ``aggregation``; see the module
    docstring (``nan_pads=False``: finite padding, for a function that multiplies by the mask;
    ``constants_require_grad=False``: ``ref_log_probs`` passed detached).
    Returns a :class:`CheckReport`; raises ``AssertionError`` with a diagnosis."""
    from pgmath.llm.policy_loss import policy_loss_weights

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    policy_loss_weights(torch.ones(1, 1, dtype=torch.bool), aggregation, normalizer=normalizer,
                        num_sequences=num_sequences)  # ValueError naming a bad setting
    kw = {"normalizer": normalizer, "num_sequences": num_sequences}
    reference = kl_penalty_reference(estimator, aggregation, **kw)
    fname = target_name(fn)
    label = f"check_kl_penalty({estimator!r}, aggregation={aggregation!r})"
    refused: list[str] = []

    def body_for(opts: CheckOptions) -> Callable[[TokenCase], None]:
        def body(case: TokenCase) -> None:
            m = case.mask
            if not bool(m.any()):
                try:
                    v, _ = _observe(fn, case, gradients, False)
                except Exception:  # refusing an empty selection conforms
                    return
                if np.isfinite(v).all():
                    return
                raise Mismatch("all-masked batch gave a non-finite penalty", lambda: (
                    f"{label}: {fname} gave {v.tolist()} on a batch with no response token; expected an "
                    "exception or a finite penalty with finite gradients\n" + token_table(case, NAMES, [], set())))

            def user() -> tuple[np.ndarray, float, bool]:
                if not gradients or not constants_require_grad:
                    return (*_observe(fn, case, gradients, False), False)
                try:
                    return (*_observe(fn, case, True, True), True)
                except Mismatch:
                    raise
                except Exception:
                    out = _observe(fn, case, True, False)
                    refused.append(case.label or "generated")
                    return (*out, False)

            got, eps_out, constants = call_user(user, lambda: f"{label}: {fname} failed",
                                                lambda: token_table(case, NAMES, [], set()))
            c64 = TokenCase(case.a.double(), case.b.double(), m, case.label)
            exp, _ = _observe(reference, c64, gradients, constants)
            w = policy_loss_weights(m.cpu(), aggregation, **kw).numpy() if aggregation != "token-sum" \
                else m.cpu().numpy().astype(float)
            vscale, gscale = _scale(estimator, case, w)
            rt, at = opts.tolerances(max(eps_out, output_eps(case.a.dtype)), 8)
            problems = []
            if not abs(got[0] - exp[0]) <= at + rt * vscale:
                problems.append(f"  penalty: {fmt_pair(exp[0], got[0])}")
            n = case.a.numel()
            for k, name in enumerate(NAMES[: 1 + int(constants)] if gradients else ()):
                g, e = got[1 + k * n: 1 + (k + 1) * n], exp[1 + k * n: 1 + (k + 1) * n]
                for i in np.flatnonzero(~(np.abs(g - e) <= at + rt * gscale))[:4]:
                    extra = "; ref_log_probs must be treated as a constant (detached)" if k else ""
                    problems.append(f"  ∂penalty/∂{name} at entry {i}: {fmt_pair(e[i], g[i])}{extra}")
            if not problems:
                return

            def render() -> str:
                def obs(f: Callable[..., Any]) -> np.ndarray:
                    return _observe(f, case, gradients, constants)[0]

                diag = search_family(got, exp, _family(estimator, aggregation, kw, m.shape[1]), obs)
                rows = [("expected ∂/∂logπ", exp[1:1 + n]), ("got ∂/∂logπ", got[1:1 + n])] if gradients else []
                return "\n".join([f"{label}: {fname} disagrees with {REFERENCE}:", *problems,
                                  token_table(case, NAMES, rows, set()), *([diag] if diag else []),
                                  tolerance_line(rt, at)])

            raise Mismatch(problems[0].strip(), render)

        return body

    dtypes = [torch.float64, torch.float32] if "dtype" not in overrides and options is None else [None]
    t0, calls, labels = time.perf_counter(), 0, ()
    logp = st.integers(-40, 0).map(lambda i: i / 4)
    for dtype in dtypes:
        opts = resolve_options(options, {**overrides, **({"dtype": dtype} if dtype is not None else {})})
        strat = opts.strategy if opts.strategy is not None else response_layouts(
            opts.dtype, opts.device, a_values=logp, b_values=logp, nan_pads=nan_pads)
        edges = [*response_edge_cases(opts.dtype, opts.device),
                 TokenCase(torch.tensor([[-0.3, -1.4]], dtype=opts.dtype), torch.tensor([[-0.5, -1.0]], dtype=opts.dtype),
                           torch.zeros(1, 2, dtype=torch.bool), "every token masked")]
        n, labels = run_cases(strat, body_for(opts), edges, opts)
        calls += n
    report = CheckReport(label, fname, REFERENCE, "pgmath", calls, labels, time.perf_counter() - t0)
    if refused:
        report = dataclasses.replace(report, notes=("the function refuses ref_log_probs that require grad "
                                                    "(a clear exception); it was then called with them detached",))
    return report
