"""Shared machinery of the proofs: the result type, the exact zero test and the report.

A proof is a function ``prove(...) -> ProofResult`` whose keyword arguments are the *claimed*
formulas (true ones by default). It builds both sides of each claim as sympy expressions over
symbols and accepts a claim only if sympy reduces the difference to exactly 0
(:func:`identity`), or—for a sign statement—only if sympy decides the sign from the symbols'
assumptions (:func:`nonnegative`). A claim that does not reduce to 0 is rejected, and the
rejection is backed by an exact counterexample point when one exists among a fixed set of
rational test points (:func:`counterexample`). Nothing here samples numbers to *accept* a claim.
"""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.polys.fields import FracElement

__all__ = [
    "Claim",
    "ProofResult",
    "counterexample",
    "exp_to_positive",
    "identity",
    "is_zero",
    "logits",
    "nonnegative",
    "report",
    "run_module",
    "softmax",
    "to_text",
]


@dataclass(frozen=True)
class Claim:
    """One checked statement inside a proof."""

    statement: str
    passed: bool
    details: str


@dataclass(frozen=True)
class ProofResult:
    """The outcome of a proof: ``passed`` is true only if every claim in it was established."""

    name: str
    statement: str
    claims: tuple[Claim, ...]
    method: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.claims) and all(c.passed for c in self.claims)

    @property
    def details(self) -> str:
        return "\n".join(
            f"[{'ok' if c.passed else 'REJECTED'}] {c.statement}: {c.details}" for c in self.claims
        )

    @property
    def summary(self) -> str:
        ok = sum(c.passed for c in self.claims)
        if self.passed:
            return f"{ok}/{len(self.claims)} claims proven"
        first = next(c for c in self.claims if not c.passed)
        return f"{ok}/{len(self.claims)} claims proven; rejected: {first.statement}"


def to_text(expr: Any) -> str:
    """A compact one-line rendering of a sympy expression."""
    return sp.sstr(expr)


def exp_to_positive(expr: sp.Expr, thetas: Sequence[sp.Symbol]) -> sp.Expr:
    """Replace every ``exp(θᵢ)`` by a positive symbol ``xᵢ``.

    Softmax expressions become rational functions of the ``xᵢ``, for which ``cancel`` is a
    complete zero test (a rational function is 0 iff its reduced numerator is the 0 polynomial).
    """
    xs = {sp.exp(t): sp.Symbol(f"exp({t.name})", positive=True) for t in thetas}
    out = sp.sympify(expr).subs(xs)
    if out.has(sp.exp):  # exp(θᵢ − θⱼ) and similar combinations: split, substitute again
        out = sp.expand_power_exp(out).subs(xs)
    return out


def is_zero(expr: sp.Expr) -> bool:
    """True iff sympy reduces ``expr`` to exactly 0 (rational normal form, then ``simplify``)."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    reduced = sp.cancel(sp.together(expr))
    if reduced == 0:
        return True
    reduced = sp.simplify(sp.expand_log(reduced, force=False))
    return bool(reduced == 0)


def _candidates(sym: sp.Symbol, domains: Mapping[sp.Symbol, Sequence[Any]]) -> list[sp.Expr]:
    if sym in domains:
        return [sp.sympify(v) for v in domains[sym]]
    if sym.is_positive:
        return [sp.Rational(1, 2), sp.Integer(2), sp.Rational(3, 7), sp.Integer(5)]
    return [sp.Rational(-1, 3), sp.Integer(1), sp.Rational(5, 2), sp.Integer(-2)]


def counterexample(
    expr: sp.Expr,
    domains: Mapping[sp.Symbol, Sequence[Any]] | None = None,
    *,
    tries: int = 64,
    seed: int = 0,
) -> tuple[dict[sp.Symbol, sp.Expr], sp.Expr] | None:
    """An exact point where ``expr`` is not 0 (``None`` if none among the test points).

    Points come from ``domains`` (per symbol) or a small default set respecting the symbol's
    sign assumption; at most ``tries`` combinations, drawn with a fixed seed. The value is
    evaluated with 30 significant digits and counts as nonzero above 1e-20.
    """
    domains = dict(domains or {})
    syms = sorted(sp.sympify(expr).free_symbols, key=lambda s: s.name)
    pools = [_candidates(s, domains) for s in syms]
    combos: Iterable[tuple[sp.Expr, ...]]
    total = 1
    for p in pools:
        total *= len(p)
    if total <= tries:
        combos = itertools.product(*pools)
    else:
        rng = random.Random(seed)
        combos = (tuple(rng.choice(p) for p in pools) for _ in range(tries))
    for combo in combos:
        point = dict(zip(syms, combo))
        try:
            num = sp.N(sp.sympify(expr).subs(point), 30)
            size = abs(complex(num)) if num.is_number else None
        except (ZeroDivisionError, ValueError, TypeError, ArithmeticError):
            continue
        if size is not None and size == size and size != float("inf") and size > 1e-20:
            return point, num
    return None


def _field_counterexample(
    frac: FracElement, domains: Mapping[sp.Symbol, Sequence[Any]] | None, *, tries: int = 64, seed: int = 0
) -> tuple[dict[sp.Symbol, sp.Expr], sp.Expr] | None:
    """:func:`counterexample` for an element of a rational-function field (exact evaluation)."""
    domains = dict(domains or {})
    field_ = frac.field
    symbols = list(field_.symbols)
    pools = [[sp.Rational(v) for v in _candidates(sym, domains)] for sym in symbols]
    rng = random.Random(seed)
    for _ in range(tries):
        point = [rng.choice(p) for p in pools]
        num = frac.numer.evaluate(list(zip(frac.numer.ring.gens, point)))
        den = frac.denom.evaluate(list(zip(frac.denom.ring.gens, point)))
        if den != 0 and num != 0:
            value = sp.Rational(num) / sp.Rational(den)
            used = {
                s: v
                for k, (s, v) in enumerate(zip(symbols, point))
                if frac.numer.degree(k) > 0 or frac.denom.degree(k) > 0
            }
            return used, value
    return None


def _point_text(point: Mapping[sp.Symbol, sp.Expr]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def identity(
    statement: str,
    lhs: sp.Expr | Sequence[sp.Expr],
    rhs: sp.Expr | Sequence[sp.Expr],
    *,
    domains: Mapping[sp.Symbol, Sequence[Any]] | None = None,
    transform: Any = None,
) -> Claim:
    """Claim ``lhs == rhs`` (elementwise for sequences) as an identity in all symbols.

    ``transform`` (optional) maps each difference before the zero test, e.g.
    :func:`exp_to_positive` to turn softmax expressions into rational functions.
    """
    lhs_list = list(lhs) if isinstance(lhs, (list, tuple)) else [lhs]
    rhs_list = list(rhs) if isinstance(rhs, (list, tuple)) else [rhs]
    if len(lhs_list) != len(rhs_list):
        return Claim(statement, False, f"{len(lhs_list)} left sides vs {len(rhs_list)} right sides")
    for i, (a, b) in enumerate(zip(lhs_list, rhs_list)):
        if isinstance(a, FracElement) or isinstance(b, FracElement):
            # exact rational-function field: equality of canonical forms is identity
            frac = a - b
            if frac != 0 and isinstance(frac, FracElement):
                ce = _field_counterexample(frac, domains)
                where = f" (component {i})" if len(lhs_list) > 1 else ""
                detail = (
                    f"false{where}: at {_point_text(ce[0])} left - right = {sp.N(ce[1], 6)}"
                    if ce is not None
                    else f"false{where}: the difference is the nonzero rational function {frac.as_expr()}"
                )
                return Claim(statement, False, detail)
            zero = frac == 0
            diff = sp.sympify(frac) if not isinstance(frac, FracElement) else frac.as_expr()
        else:
            diff = sp.sympify(a) - sp.sympify(b)
            zero = is_zero(transform(diff) if transform is not None else diff)
        if not zero:
            where = f" (component {i})" if len(lhs_list) > 1 else ""
            ce = counterexample(diff, domains)  # on the untransformed difference
            if ce is None:
                return Claim(
                    statement,
                    False,
                    f"difference{where} does not simplify to 0 and no counterexample was "
                    f"found among the test points: {to_text(sp.simplify(diff))}",
                )
            point, value = ce
            return Claim(
                statement,
                False,
                f"false{where}: "
                + (f"at {_point_text(point)} " if point else "")
                + f"left - right = {sp.N(value, 6)}",
            )
    n = len(lhs_list)
    return Claim(
        statement,
        True,
        "difference simplifies to exactly 0" + (f" ({n} components)" if n > 1 else ""),
    )


def nonnegative(statement: str, expr: sp.Expr, *, note: str = "") -> Claim:
    """Claim ``expr >= 0`` for all values of its symbols, decided from their sign assumptions."""
    expr = sp.simplify(sp.sympify(expr))
    verdict = expr.is_nonnegative
    if verdict is True:
        return Claim(statement, True, f"{to_text(expr)} >= 0 from the symbols' signs{note}")
    if verdict is False:
        return Claim(statement, False, f"{to_text(expr)} is negative{note}")
    ce = None
    if expr.free_symbols:
        for point in itertools.islice(_sign_points(expr), 64):
            v = sp.N(expr.subs(point), 30)
            if v.is_real and v < 0:
                ce = (point, v)
                break
    if ce is not None:
        return Claim(statement, False, f"negative at {_point_text(ce[0])}: {sp.N(ce[1], 6)}")
    return Claim(statement, False, f"sympy cannot decide the sign of {to_text(expr)}{note}")


def _sign_points(expr: sp.Expr) -> Iterable[dict[sp.Symbol, sp.Expr]]:
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    pools = [_candidates(s, {}) for s in syms]
    for combo in itertools.product(*pools):
        yield dict(zip(syms, combo))


def report(result: ProofResult, stream: Any = None) -> int:
    """Print one proof's claims (rich) and return the exit status (0 iff it passed)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=stream or sys.stdout)
    table = Table(title=escape(f"{result.name}: {result.statement}"), show_lines=True)
    table.add_column("claim")
    table.add_column("result")
    table.add_column("details")
    for c in result.claims:
        table.add_row(
            escape(c.statement), "[green]proven[/]" if c.passed else "[red]REJECTED[/]", escape(c.details)
        )
    console.print(table)
    console.print(escape(f"method: {result.method}"))
    return 0 if result.passed else 1


def run_module(result: ProofResult) -> None:
    """The ``if __name__ == "__main__"`` body of every proof module."""
    raise SystemExit(report(result))


def softmax(thetas: Sequence[sp.Expr]) -> list[sp.Expr]:
    """π(a) = exp(θₐ) / Σ_b exp(θ_b), as sympy expressions."""
    z = sum(sp.exp(t) for t in thetas)
    return [sp.exp(t) / z for t in thetas]


def logits(prefix: str, n: int) -> list[sp.Symbol]:
    """n real logit symbols ``prefix_0 … prefix_{n-1}``."""
    return list(sp.symbols(f"{prefix}_0:{n}", real=True))
