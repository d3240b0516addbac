"""The registry behind ``pgmath verify``.

Each area of the library contributes table rows through a *suite module* that defines::

    def rows(ctx: VerifyContext) -> list[VerifyRow]: ...
    # optional: write JSON/PNG artifacts when ``pgmath verify --out DIR`` is given
    def write_artifacts(ctx: VerifyContext, out_dir: pathlib.Path) -> list[pathlib.Path]: ...

``SUITES`` lists the suite modules in the order their rows appear in the table. A check's
function returns a :class:`Outcome`; an exception raised inside a check is reported as a failure
with its message, never swallowed silently.
"""

from __future__ import annotations

import importlib
import pathlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["SUITES", "SUITES_BY_AREA", "Outcome", "RowResult", "VerifyContext", "VerifyRow", "collect_rows", "run_row"]

#: Area name -> suite module, in table order. Each module must define ``rows(ctx)``.
SUITES_BY_AREA: dict[str, str] = {
    "core": "pgmath.specs.suite",
    "proofs": "pgmath.proofs.suite",
    "mdp": "pgmath.mdp.verify",
    "estimators": "pgmath.estimators.verify",
    "llm": "pgmath.llm.verify",
    "lqr": "pgmath.lqr.verify",
}
SUITES: tuple[str, ...] = tuple(SUITES_BY_AREA.values())


@dataclass(frozen=True)
class VerifyContext:
    """Options shared by every check (from the ``pgmath verify`` command line)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    samples: int | None = None  # Monte-Carlo sample size override (None: each check's default)
    seed: int = 0
    quick: bool = False  # smaller sample sizes / fewer cases, for a fast smoke run

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh generator on ``self.device`` seeded with ``seed + offset`` (no global state)."""
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed + offset)
        return g


@dataclass
class Outcome:
    """What a check function returns."""

    passed: bool
    statistic: str  # a short human-readable figure, e.g. "max |err| = 3e-16" or "p = 0.41"
    data: dict[str, Any] = field(default_factory=dict)  # JSON-serializable details


@dataclass(frozen=True)
class VerifyRow:
    """One row of the verify table."""

    area: str  # "core", "proofs", "mdp", "estimators", "llm"
    name: str  # the formula or estimator, e.g. "GAE(γ, λ)"
    check: str  # how it is checked, e.g. "fast scan == reference loop (float64)"
    fn: Callable[[VerifyContext], Outcome]


@dataclass
class RowResult:
    area: str
    name: str
    check: str
    passed: bool
    statistic: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "name": self.name,
            "check": self.check,
            "passed": self.passed,
            "statistic": self.statistic,
            "seconds": round(self.seconds, 4),
            "data": self.data,
            "error": self.error,
        }


def collect_rows(ctx: VerifyContext, suites: tuple[str, ...] = SUITES) -> list[VerifyRow]:
    """Import every suite module and gather its checks."""
    out: list[VerifyRow] = []
    for modname in suites:
        mod = importlib.import_module(modname)
        out.extend(mod.rows(ctx))
    return out


def run_row(check: VerifyRow, ctx: VerifyContext) -> RowResult:
    """Run one check; an exception is a failure whose message is kept."""
    t0 = time.perf_counter()
    try:
        outcome = check.fn(ctx)
        return RowResult(
            check.area, check.name, check.check, bool(outcome.passed), outcome.statistic,
            time.perf_counter() - t0, outcome.data,
        )
    except Exception as exc:  # a crashing check is a failing check, reported with its cause
        return RowResult(
            check.area, check.name, check.check, False, f"error: {type(exc).__name__}",
            time.perf_counter() - t0, {}, "".join(traceback.format_exception_only(exc)).strip(),
        )


def write_suite_artifacts(
    ctx: VerifyContext, out_dir: pathlib.Path, suites: tuple[str, ...] = SUITES
) -> list[pathlib.Path]:
    """Call ``write_artifacts`` of every suite that has one."""
    paths: list[pathlib.Path] = []
    for modname in suites:
        mod = importlib.import_module(modname)
        fn = getattr(mod, "write_artifacts", None)
        if fn is not None:
            paths.extend(fn(ctx, out_dir))
    return paths
