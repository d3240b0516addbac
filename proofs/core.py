"""Shared machinery of the proofs: the result type, the exact zero test and the report.

A proof is a function ``prove(...) -> ProofResult`` whose keyword arguments are the *claimed*
formulas (true ones by default). It builds both sides of each claim as sympy expressions over
symbols and accepts a claim only if sympy reduces the difference to exactly 0
(:func:`identity`), or—for a sign statement—only if sympy decides the sign from the symbols'
assumptions (:func:`nonnegative`). A claim that does not reduce to 0 is rejected, and the
rejection is backed by an exact counterexample point when one exists among a fixed set of
rational test points (:func:`counterexample`). Nothing here samples numbers to *accept* an
algebraic claim.

Numeric claims tie a proof to the code: a proof whose statement is computed by a pgmath function
takes that function as its ``impl`` keyword (the pgmath function by default, any callable with
its public signature otherwise), evaluates it at a handful of random points drawn from an
explicitly seeded generator, and compares it with the proven closed form, lambdified to float64
(:func:`lambdify`), within :data:`TOL` (:func:`agree`). So a proof fails when the *code* is wrong,
not only when the algebra is.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import torch
from sympy.polys.fields import FracElement

__all__ = [
    "TOL",
    "Claim",
    "Comparison",
    "ProofResult",
    "agree",
    "as_float64",
    "counterexample",
    "exp_to_positive",
    "flag_reduce",
    "gradient",
    "identity",
    "impl_keywords",
    "is_zero",
    "lambdify",
    "log_softmax",
    "logits",
    "nonnegative",
    "numpy_rng",
    "report",
    "resolve",
    "run_module",
    "softmax",
    "to_text",
]

#: Tolerance of the numeric claims: |impl − closed form| ≤ TOL · max(1, |closed form|).
TOL = 1e-10


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
    """True iff sympy reduces ``expr`` to exactly 0 (a polynomial: its expansion; otherwise the
    rational normal form, then ``simplify``)."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if expr.is_polynomial():  # the expanded form of a polynomial is canonical: 0 iff it expands to 0
        return sp.expand(expr) == 0
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


def flag_reduce(expr: sp.Expr, flags: Iterable[sp.Symbol]) -> sp.Expr:
    """The multilinear form of a polynomial in 0/1 flags: expand, then fᵏ → f for every flag f.

    Two polynomials agree on every 0/1 pattern of the flags iff their multilinear forms are
    equal (a multilinear polynomial vanishing on {0, 1}ⁿ is 0), so ``transform=`` this in
    :func:`identity` decides "for every pattern of terminated/truncated flags" exactly.
    """
    flag_set = set(flags)
    return sp.expand(sp.sympify(expr)).replace(
        lambda e: e.is_Pow and e.base in flag_set and e.exp.is_positive and e.exp.is_integer,
        lambda e: e.base,
    )


# ---------------------------------------------------------------------------------------------
# numeric claims: the code against the proven closed form


Comparison = tuple[str, Any, Any]  # (label, what the implementation gave, the closed form)


def numpy_rng(seed: int) -> np.random.Generator:
    """An explicitly seeded numpy generator (no global random state)."""
    return np.random.default_rng(seed)


def resolve(dotted: str) -> Any:
    """The object a dotted name refers to: ``"pgmath.gae"``,
    ``"pgmath.mdp.TabularMDP.exact_policy_gradient"`` (longest importable module, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"cannot resolve {dotted!r}")


def impl_keywords(fn: Callable[..., Any]) -> dict[str, Any]:
    """The implementation keywords of a proof function (``impl`` and ``*_impl``) and their defaults.

    Use it to find which keyword takes a given pgmath function, e.g. the keyword of
    ``pgmath.td_errors`` in :func:`pgmath.proofs.gae.prove` is the one whose default it is.
    """
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name == "impl" or name.endswith("_impl")
    }


def _heaviside(x: Any, h0: Any = 0.5) -> np.ndarray:
    """sympy's Heaviside(x, H0) in numpy (printed directly: sympy's rewrite of it is slow)."""
    return np.heaviside(x, h0)


def lambdify(args: Sequence[Any], exprs: Sequence[sp.Expr]) -> Callable[..., np.ndarray]:
    """float64 numpy evaluation of sympy ``exprs`` (stacked on a new leading axis).

    ``args`` may nest lists of symbols (a list argument takes an array whose leading axis runs
    over the list); the values broadcast, so one call evaluates a whole batch of points.
    """
    fn = sp.lambdify(list(args), list(exprs), modules=[{"Heaviside": _heaviside}, "numpy"])

    def evaluate(*values: Any) -> np.ndarray:
        outs = [np.asarray(o, dtype=np.float64) for o in fn(*values)]
        return np.stack(np.broadcast_arrays(*outs))

    return evaluate


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    """log softmax over the last axis, z − max z − log Σ exp(z − max z), from elementwise ops.

    Same values as ``torch.log_softmax``, whose CPU kernel dispatches even tiny tensors to its
    thread pool (milliseconds per call and per backward on a busy machine).
    """
    shifted = z - z.detach().amax(-1, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


def gradient(output: Any, wrt: torch.Tensor) -> torch.Tensor:
    """∂ output / ∂ wrt by autograd; zeros when the output does not depend on ``wrt`` at all (an
    implementation that detaches its input has gradient 0 — a wrong value, not a crash)."""
    if not isinstance(output, torch.Tensor) or not output.requires_grad:
        return torch.zeros_like(wrt)
    (grad,) = torch.autograd.grad(output, wrt, allow_unused=True)
    return torch.zeros_like(wrt) if grad is None else grad


def as_float64(x: Any) -> np.ndarray:
    """A tensor / array / number as a float64 numpy array (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def agree(
    statement: str, comparisons: Callable[[], Iterable[Comparison]], *, tol: float = TOL
) -> Claim:
    """Claim that an implementation equals the proven closed form at every compared point.

    ``comparisons()`` yields ``(label, got, want)``: ``got`` computed by the implementation,
    ``want`` by the lambdified closed form, same shape. Accepted iff every entry satisfies
    |got − want| ≤ ``tol`` · max(1, |want|) (relative for large values, absolute near 0; NaN
    fails). An exception raised by the implementation rejects the claim with its message.
    """
    count, worst = 0, 0.0
    try:
        for label, got, want in comparisons():
            g, w = as_float64(got), as_float64(want)
            if g.shape != w.shape:
                return Claim(statement, False, f"{label}: shape {g.shape}, expected {w.shape}")
            err = np.abs(g - w) / np.maximum(1.0, np.abs(w))
            bad = ~(err <= tol)
            if bad.any():
                i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
                return Claim(
                    statement,
                    False,
                    f"{label}: got {g[i]:.12g}, proven {w[i]:.12g} at index {tuple(int(k) for k in i)} "
                    f"(error {err[i]:.2e} > {tol:g})",
                )
            count += g.size
            worst = max(worst, float(err.max(initial=0.0)))
    except Exception as exc:  # a crashing implementation is a wrong one, with its cause shown
        return Claim(statement, False, f"the implementation raised {type(exc).__name__}: {exc}")
    if count == 0:
        return Claim(statement, False, "nothing was compared")
    return Claim(statement, True, f"{count} values agree within {tol:g} (worst error {worst:.1e})")
