"""``check_token_log_probs`` and ``check_token_entropy``: anyone's per-token log-probabilities or
entropies of a causal LM against the reference loops of the ``token_log_probs`` and
``token_entropy`` specs (:mod:`pgmath.specs.llm_logprobs`).

The function under test is called in :mod:`pgmath.llm`'s alignment — position t holds the value
for the distribution token t was drawn from (logits row t − 1), 0 where ``mask`` is false —

    fn(logits [B, L, V], tokens [B, L], mask [B, L] bool, *, temperature=T) -> [B, L]   (log-probs)
    fn(logits [B, L, V], mask [B, L] bool, *, temperature=T) -> [B, L]                  (entropies)

with log π(yₜ) = log softmax(logits[t−1] / T)[yₜ] and H = −Σ p log p, p = softmax(logits[t−1] / T).
Adapters for TRL, verl and Hugging Face causal LMs are in :mod:`pgmath.testing.adapters.logprobs`.

The generated inputs have masks with gaps, padding ids (−100) at masked-out positions and NaN in
the logits rows that score nothing; the edge cases add bf16 logits, large logits (a softmax that
is not stabilised overflows), −inf logits (impossible tokens), every token masked out, and V = 1.
Each entry passes when |got − expected| ≤ atol + rtol · scale with scale = |expected| +
max|z|/T + log V of its row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
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
from pgmath.testing.report import Mismatch, fmt, tolerance_line, which_input

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = [
    "DEFAULT_TEMPERATURES",
    "TokenCase",
    "check_token_entropy",
    "check_token_log_probs",
    "token_cases",
    "token_edge_cases",
]

#: Temperatures a check runs at unless told: T = 1 and a typical sampling temperature.
DEFAULT_TEMPERATURES = (1.0, 0.6)


@dataclass(frozen=True)
class TokenCase:
    """Logits ``[B, L, V]``, token ids ``[B, L]`` and the scored-token mask ``[B, L]``."""

    logits: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    label: str = ""

    def __repr__(self) -> str:
        parts = [*([repr(self.label)] if self.label else []), f"logits={self.logits.tolist()}",
                 f"tokens={self.tokens.tolist()}", f"mask={self.mask.tolist()}"]
        return f"TokenCase({', '.join(parts)})"


def token_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Any:
    """Hypothesis strategy of :class:`TokenCase`: B ≤ 3, L ≤ 6, V ≤ 6, quarter-integer logits
    in [−4, 4], masks with gaps (``mask[:, 0]`` false), sometimes −100 at masked-out ids and NaN
    in the rows that score nothing."""
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    @st.composite
    def draw(d):
        B, L, V = d(st.integers(1, 3)), d(st.integers(2, 6)), d(st.integers(2, 6))
        logits = d(arrays(np.float64, (B, L, V), elements=st.integers(-16, 16).map(lambda i: i / 4)))
        tokens = d(arrays(np.int64, (B, L), elements=st.integers(0, V - 1)))
        mask = d(arrays(np.bool_, (B, L)))
        mask[:, 0] = False
        if not mask.any():
            mask[d(st.integers(0, B - 1)), d(st.integers(1, L - 1))] = True
        if d(st.booleans()):
            tokens = np.where(mask, tokens, -100)
        if d(st.booleans()):
            unread = ~np.concatenate([mask[:, 1:], np.zeros((B, 1), bool)], 1)
            logits = np.where(unread[..., None], np.nan, logits)
        return TokenCase(torch.as_tensor(logits, dtype=dtype, device=device), torch.as_tensor(tokens, device=device),
                         torch.as_tensor(mask, device=device))

    return draw()


def token_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[TokenCase]:
    """Named cases: padding ids, NaN in unread rows, bf16 logits, large and −inf logits, an
    empty mask, V = 1 (fixed numbers, so a failure reads the same every time)."""
    rng = np.random.default_rng(17)
    B, L, V = 2, 5, 4
    base = np.round(rng.normal(size=(B, L, V)) * 2, 2)
    tokens = rng.integers(0, V, size=(B, L))
    mask = np.array([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=bool)

    def mk(label, z, tok=tokens, m=mask, dt=dtype):
        return TokenCase(torch.as_tensor(np.asarray(z), dtype=dt, device=device),
                         torch.as_tensor(np.asarray(tok), device=device), torch.as_tensor(np.asarray(m), device=device),
                         label)

    pads = np.where(mask, tokens, -100)
    nan_rows = base.copy()
    nan_rows[0, 3:] = np.nan  # rows 3, 4 of sample 0 score tokens 4 and (none): unread
    nan_rows[:, -1] = np.nan
    neg_inf = base.copy()
    neg_inf[..., 0] = -np.inf  # token 0 impossible everywhere
    tok_no0 = np.where(tokens == 0, 1, tokens)
    return [
        mk("padding id −100 at every masked-out position", base, pads),
        mk("NaN in the logits rows that score no token", nan_rows, pads),
        mk("bf16 logits", base, pads, dt=torch.bfloat16),
        mk("large logits (|z| up to 5e3: the softmax must be stabilised)", base * 2000),
        mk("−inf logits (an impossible token, never scored)", neg_inf, tok_no0),
        mk("every token masked out (all zeros)", base, pads, np.zeros((B, L), bool)),
        mk("one-token vocabulary (V = 1)", base[..., :1], np.zeros_like(tokens)),
    ]


@dataclass(frozen=True)
class _Setup:
    kind: str  # "log_probs" or "entropy"
    temperature: float
    fname: str

    @property
    def check(self) -> str:
        return f"check_token_{self.kind}"

    @property
    def label(self) -> str:
        return f"{self.check}(temperature={self.temperature:g})"

    def call(self, fn: Callable[..., Any], case: TokenCase) -> Any:
        if self.kind == "log_probs":
            return fn(case.logits, case.tokens, case.mask, temperature=self.temperature)
        return fn(case.logits, case.mask, temperature=self.temperature)

    def expected(self, case: TokenCase) -> np.ndarray:
        z = case.logits.detach().cpu().double()
        m = case.mask.cpu()
        if self.kind == "log_probs":
            out = spec_reference("token_log_probs")(z, case.tokens.cpu(), m, temperature=self.temperature)
        else:
            out = spec_reference("token_entropy")(z, m, temperature=self.temperature)
        return out.numpy()

    def scale(self, case: TokenCase, exp: np.ndarray) -> np.ndarray:
        z = case.logits.detach().cpu().double()
        finite = torch.where(torch.isfinite(z), z.abs(), torch.zeros_like(z))
        row = finite.amax(-1).numpy() / self.temperature  # row t scores token t + 1
        row = np.concatenate([np.zeros_like(row[:, :1]), row[:, :-1]], 1)
        return np.abs(exp) + row + math.log(max(z.shape[-1], 2))

    def describe(self, case: TokenCase, marks: list[tuple[int, int]]) -> str:
        z = case.logits.detach().cpu().double().numpy()
        lines = [f"The {which_input(case.label)}: logits {tuple(z.shape)} {case.logits.dtype}, "
                 f"T = {self.temperature:g}; logits row t−1 scores token t"]
        for b, t in marks[:3]:
            tok = int(case.tokens[b, t]) if self.kind == "log_probs" else None
            row = ", ".join(fmt(v) for v in z[b, t - 1][:8]) + (" …" if z.shape[-1] > 8 else "")
            lines.append(f"    b={b}, t={t}: logits[{b}, {t - 1}] = [{row}]" + (f", token {tok}" if tok is not None else ""))
        lines.append(f"    mask   = {case.mask.int().tolist()}")
        if self.kind == "log_probs":
            lines.append(f"    tokens = {case.tokens.tolist()}")
        return "\n".join(lines)


def _mutant_output(s: _Setup, case: TokenCase) -> Callable[[Mutant], np.ndarray | None]:
    def output(m: Mutant) -> np.ndarray | None:
        return to_numpy(s.call(m.fn, case))[0]

    return output


def _body(s: _Setup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[TokenCase], None]:
    def header() -> str:
        return f"{s.label}: {s.fname} failed"

    def body(case: TokenCase) -> None:
        def describe() -> str:
            return s.describe(case, [])

        out = call_user(lambda: s.call(fn, case), header, describe)
        got, eps_out = call_user(lambda: to_numpy(out, "your output"), header, describe)
        exp = s.expected(case)
        if got.shape != exp.shape:
            raise Mismatch("wrong shape", lambda: f"{header()}\n  your output has shape {got.shape}; expected "
                           f"{exp.shape} ([B, L], position t for token t)\n{describe()}")
        rt, at = opts.tolerances(max(eps_out, output_eps(case.logits.dtype)), case.logits.shape[-1])
        bad = mismatched(got, exp, s.scale(case, exp), rt, at)
        if not bad.any():
            return
        where = [(int(b), int(t)) for b, t in zip(*np.nonzero(bad))]
        problems = []
        for b, t in where[:5]:
            scored = "scored" if bool(case.mask[b, t]) else "masked out (expected 0)"
            problems.append(f"  b={b}, t={t} ({scored}): expected {fmt(exp[b, t])}, got {fmt(got[b, t])} "
                            f"(diff {fmt(got[b, t] - exp[b, t])})")

        def render() -> str:
            diag = diagnosis_line(s.check, got, exp, _mutant_output(s, case), {"temperature": s.temperature})
            return "\n".join([f"{s.label}: {s.fname} disagrees with the {s.kind.replace('_', '-')} reference "
                              f"(pgmath.llm.token_{s.kind}_reference):", *problems,
                              s.describe(case, [w for w in where if bool(case.mask[w])] or where),
                              *([diag] if diag else []), tolerance_line(rt, at)])

        raise Mismatch(problems[0].strip(), render)

    return body


def _temperatures(temperature: float | Sequence[float]) -> tuple[float, ...]:
    from pgmath.llm.chunked import validate_temperature

    ts = (temperature,) if isinstance(temperature, (int, float)) else tuple(temperature)
    if not ts:
        raise ValueError("temperature must be a number or a non-empty sequence of numbers")
    return tuple(validate_temperature(t) for t in ts)


def _run(kind: str, fn: Callable[..., Any], temperature: float | Sequence[float], options: CheckOptions | None,
         overrides: dict[str, Any]) -> CheckReport:
    opts = resolve_options(options, overrides)
    t0 = time.perf_counter()
    calls, edges = 0, ()
    for T in _temperatures(temperature):
        s = _Setup(kind, T, target_name(fn))
        strat = opts.strategy if opts.strategy is not None else token_cases(opts.dtype, opts.device)
        c, e = run_cases(strat, _body(s, fn, opts), token_edge_cases(opts.dtype, opts.device), opts)
        calls, edges = calls + c, edges + e
    name = f"check_token_{kind}"
    return CheckReport(name, target_name(fn), f"pgmath.llm.token_{kind}_reference", "pgmath", calls, edges,
                       time.perf_counter() - t0)


def check_token_log_probs(fn: Callable[..., Any], *, temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
                          options: CheckOptions | None = None, **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check per-token log-probabilities against :func:`pgmath.llm.token_log_probs_reference`.

    ``fn(logits [B, L, V], tokens [B, L], mask [B, L], *, temperature)`` must return ``[B, L]``
    with log softmax(logits[b, t−1] / T)[tokens[b, t]] at position t where ``mask`` and 0
    elsewhere (tokens may be −100 where masked out; unread logits rows may be NaN). Run at every
    ``temperature`` (default 1 and 0.6: raw log-probs and log_softmax(z)/T are caught only at
    T ≠ 1). ``options``/``**overrides`` as :func:`~pgmath.testing.check_gae`. Raises
    ``AssertionError`` with the differing positions, the input and the known bug reproduced.

    Checked by: ``tests/test_llm_logprobs.py`` (pgmath's own functions and the TRL/verl adapters
    pass) and ``tests/test_testing_mutants.py`` (every catalogued log-prob bug is rejected).
    """
    return _run("log_probs", fn, temperature, options, dict(overrides))


def check_token_entropy(fn: Callable[..., Any], *, temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
                        options: CheckOptions | None = None, **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check per-token entropies against :func:`pgmath.llm.token_entropy_reference`.

    ``fn(logits [B, L, V], mask [B, L], *, temperature)`` must return ``[B, L]`` with
    −Σ p log p, p = softmax(logits[b, t−1] / T), at position t where ``mask`` and 0 elsewhere.
    Otherwise as :func:`check_token_log_probs`.

    Checked by: ``tests/test_llm_logprobs.py`` and ``tests/test_testing_mutants.py``.
    """
    return _run("entropy", fn, temperature, options, dict(overrides))
