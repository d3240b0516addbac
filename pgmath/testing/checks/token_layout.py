"""What the token-level checks share (``check_kl_penalty``, ``check_token_gae``,
``check_reinforce_pp_returns``): the response layout, its generator and edge cases, whitening
conventions, and the entry-by-entry comparison of ``[B, L]`` outputs.

The response layout: ``[B, L]`` tensors whose row b holds a prompt (mask false), then the
response (mask true, contiguous), then padding (mask false); the sequence ends after its last
response token. An empty response (a row with no true entry) is allowed. A response may have
gaps (a tool's output between two turns, masked out): they are skipped, not discounted, and do
not end the response. Entries outside the mask may hold anything (NaN in the generated inputs, so a function that reads them is caught); the
output is compared on the mask only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pgmath.testing.checks.core import CheckOptions, call_user, mismatched
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.report import Mismatch, flat_table, fmt_pair, tolerance_line, which_input

__all__ = [
    "STD_FLOORS",
    "TokenCase",
    "compare_tokens",
    "masked_whiten",
    "response_edge_cases",
    "response_layouts",
    "token_table",
]

#: How a standardisation guards a zero standard deviation: ``"add"`` (x − μ)/(σ + ε),
#: ``"clamp"`` (x − μ)/max(σ, ε), ``"inside"`` (x − μ)/√(σ² + ε) (verl's ``masked_whiten``).
STD_FLOORS = ("add", "clamp", "inside")


@dataclass(frozen=True)
class TokenCase:
    """``[B, L]`` inputs in the response layout: ``a`` and ``b`` (rewards and values, or log π and
    log π_ref) and the bool ``mask``."""

    a: torch.Tensor
    b: torch.Tensor
    mask: torch.Tensor
    label: str = ""

    def __repr__(self) -> str:
        parts = [repr(self.label)] if self.label else []
        parts += [f"{f.name}={getattr(self, f.name).tolist()}" for f in dataclasses.fields(self) if f.name != "label"]
        return f"TokenCase({', '.join(parts)})"


def response_mask(B: int, L: int, starts: list[int], lengths: list[int]) -> np.ndarray:
    m = np.zeros((B, L), dtype=bool)
    for i, (s, n) in enumerate(zip(starts, lengths)):
        m[i, s:s + n] = True
    return m


def response_layouts(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu", *,
                     a_values: st.SearchStrategy[float] | None = None,
                     b_values: st.SearchStrategy[float] | None = None,
                     min_tokens: int = 1, max_B: int = 4, max_L: int = 7,
                     nan_pads: bool = True) -> st.SearchStrategy[TokenCase]:
    """Hypothesis strategy of :class:`TokenCase` in the response layout (NaN outside the mask in
    half the draws; at least ``min_tokens`` response tokens in the batch)."""
    q = st.integers(-16, 16).map(lambda i: i / 4)
    a_values = q if a_values is None else a_values
    b_values = q if b_values is None else b_values

    @st.composite
    def draw(d):
        B, L = d(st.integers(1, max_B)), d(st.integers(max(1, min_tokens), max_L))
        starts = [d(st.integers(0, L - 1)) for _ in range(B)]
        lengths = [d(st.integers(0, L - s)) for s in starts]
        m = response_mask(B, L, starts, lengths)
        for i in range(B):  # sometimes a gap inside the response (a tool's output between turns)
            if lengths[i] >= 3 and d(st.booleans()):
                m[i, starts[i] + d(st.integers(1, lengths[i] - 2))] = False
        while m.sum() < min_tokens:
            row = d(st.integers(0, B - 1))
            m[row, : min(L, max(min_tokens, 1))] = True
        a = d(arrays(np.float64, (B, L), elements=a_values))
        b = d(arrays(np.float64, (B, L), elements=b_values))
        if nan_pads and d(st.booleans()):
            a, b = np.where(m, a, np.nan), np.where(m, b, np.nan)
        t = {"dtype": dtype, "device": device}
        return TokenCase(torch.tensor(a, **t), torch.tensor(b, **t), torch.tensor(m, device=device))

    return draw()


def response_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[TokenCase]:
    """A prompt before the response, padding after it, an empty response, a one-token response,
    a response filling the whole row, a multi-turn response with a masked gap, extreme values."""
    t = {"dtype": dtype, "device": device}
    T, F = True, False

    def mk(label, a, b, m):
        return TokenCase(torch.tensor(a, **t), torch.tensor(b, **t), torch.tensor(m, device=device), label)

    return [
        mk("prompt, response, padding; an empty response; a one-token response",
           [[0.5, -1.0, 0.25, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, -0.75, 0.0, 0.0]],
           [[-0.5, 0.3, -1.2, 0.1, 0.7], [0.2, 0.2, 0.2, 0.2, 0.2], [1.1, -0.4, 0.6, -2.0, 0.9]],
           [[F, T, T, T, F], [F, F, F, F, F], [F, F, T, F, F]]),
        mk("responses filling the whole row, of equal values",
           [[1.0, 1.0, 1.0], [-0.5, -0.5, -0.5]], [[1.0, 1.0, 1.0], [-0.5, -0.5, -0.5]],
           [[T, T, T], [T, T, T]]),
        mk("multi-turn: prompt, turn 1, a tool's output (masked), turn 2, padding",
           [[0.0, 0.5, -1.0, 3.0, 3.0, 0.25, 1.0, 0.0]], [[0.1, -0.3, 0.6, 2.0, -2.0, 0.4, -0.8, 0.0]],
           [[F, T, T, F, F, T, T, F]]),
        mk("large differences of either sign",
           [[-0.01, -12.0, -0.5, -20.0]], [[-12.0, -0.01, -20.0, -0.5]], [[T, T, T, T]]),
    ]


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, *, eps: float, std_floor: str = "add") -> torch.Tensor:
    """(x − μ)/floor(σ, ε) over the masked-in entries (Bessel σ), 0 outside the mask, by a
    plain loop (the statistics are computed in float64 from Python floats)."""
    m = mask.bool()
    vals = [float(v) for v in x[m].tolist()]
    mu = math.fsum(vals) / len(vals)
    var = math.fsum((v - mu) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else 0.0
    sd = math.sqrt(var)
    denom = {"add": sd + eps, "clamp": max(sd, eps), "inside": math.sqrt(var + eps)}[std_floor]
    out = torch.zeros_like(x, dtype=torch.float64)
    out[m] = (x[m].double() - mu) / denom
    return out


def token_table(case: TokenCase, names: tuple[str, str], rows: list[tuple[str, np.ndarray]],
                marks: set[int]) -> str:
    cols = [("mask", case.mask.cpu().numpy()), (names[0], case.a.detach().cpu().double().numpy()),
            (names[1], case.b.detach().cpu().double().numpy()), *rows]
    return (f"The {which_input(case.label)}, {case.a.dtype}, [B, L] = {list(case.a.shape)} "
            "(entries in row-major order):\n" + flat_table(cols, marks))


def compare_tokens(check: str, fname: str, case: TokenCase, names: tuple[str, str], what: str,
                   got: object, expected: np.ndarray, scale: np.ndarray, opts: CheckOptions,
                   n_terms: int, diagnose: Callable[[np.ndarray], str] | None = None) -> None:
    """Raise a :class:`Mismatch` when ``got`` (``[B, L]``) differs from ``expected`` on the mask."""

    def describe() -> str:
        return token_table(case, names, [], set())

    g, eps_out = call_user(lambda: to_numpy(got, what), lambda: f"{check}: {fname} failed", describe)
    if g.shape != tuple(case.mask.shape):
        raise Mismatch("wrong shape", lambda: f"{check}: {fname} failed\n  {what} have shape {g.shape}; "
                       f"expected {tuple(case.mask.shape)}\n{describe()}")
    rt, at = opts.tolerances(max(eps_out, output_eps(case.a.dtype)), n_terms)
    m = case.mask.cpu().numpy()
    bad = mismatched(g, expected, scale, rt, at) & m
    if not bad.any():
        return
    flat = np.flatnonzero(bad.reshape(-1))

    def render() -> str:
        lines = [f"{check}: {fname} disagrees with the reference on {int(bad.sum())} of {int(m.sum())} response tokens:"]
        for i in flat[:6]:
            b, t = divmod(int(i), m.shape[1])
            lines.append(f"  {what} at b={b}, t={t}: {fmt_pair(expected.reshape(-1)[i], g.reshape(-1)[i])}")
        lines.append(token_table(case, names, [("expected", np.where(m, expected, np.nan)), ("got", g)],
                                 set(flat.tolist())))
        diag = diagnose(g) if diagnose is not None else ""
        return "\n".join([*lines, *([diag] if diag else []), tolerance_line(rt, at)])

    b0, t0 = divmod(int(flat[0]), m.shape[1])
    raise Mismatch(f"{what} mismatch at b={b0}, t={t0}", render)
