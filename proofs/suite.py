"""Verify suite ``pgmath.proofs.suite``: one row per sympy proof in :data:`pgmath.proofs.PROOFS`.

Registered in pgmath/verification.py ``SUITES``; ``pgmath verify`` calls :func:`checks`.
The algebra is exact and the numeric claims (the code against the closed form) run in float64
on the CPU with fixed seeds, so the context's device, sample size and seed do not apply.
"""

from __future__ import annotations

from pgmath.verification import Outcome, VerifyContext, VerifyRow

from . import PROOFS, ProofSpec

__all__ = ["rows"]


def _runner(spec: ProofSpec):
    def run(ctx: VerifyContext) -> Outcome:
        result = spec.load()()
        return Outcome(
            passed=result.passed,
            statistic=result.summary,
            data={
                "file": spec.path,
                "impl": spec.impl,
                "statement": result.statement,
                "method": result.method,
                "claims": [
                    {"statement": c.statement, "passed": c.passed, "details": c.details[:500]}
                    for c in result.claims
                ],
            },
        )

    return run


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """One check per proof: the proof runs with its true statement and must pass."""
    return [
        VerifyRow(area="proofs", name=spec.title, check=f"sympy proof ({spec.path})", fn=_runner(spec))
        for spec in PROOFS
    ]
