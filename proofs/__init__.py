"""Symbolic proofs of the identities pgmath relies on (sympy).

Each module proves one identity with a function ``prove(...) -> ProofResult`` whose keyword
arguments are the *claimed* formulas, the true ones by default; feeding a wrong formula makes
the proof fail, which is how tests/test_proofs.py shows every proof can fail. Each module runs
alone (``python -m proofs.gae``); ``python -m proofs`` runs them all and prints a table;
``pgmath verify`` includes them through :mod:`proofs.suite`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from proofs._core import Claim, ProofResult

__all__ = ["PROOFS", "Claim", "ProofResult", "ProofSpec", "run_all", "run_proof"]


@dataclass(frozen=True)
class ProofSpec:
    """Where a proof lives: ``module.function`` (``function`` defaults to ``prove``)."""

    key: str
    module: str
    function: str = "prove"
    title_attr: str = "TITLE"

    @property
    def path(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def load(self) -> Callable[..., ProofResult]:
        return getattr(importlib.import_module(self.module), self.function)

    @property
    def title(self) -> str:
        return getattr(importlib.import_module(self.module), self.title_attr)


#: Every proof, in the order of the table.
PROOFS: tuple[ProofSpec, ...] = (
    ProofSpec("log_derivative", "proofs.log_derivative"),
    ProofSpec("softmax_score", "proofs.softmax_score"),
    ProofSpec("categorical", "proofs.categorical"),
    ProofSpec("gaussian", "proofs.gaussian"),
    ProofSpec("policy_gradient_theorem", "proofs.policy_gradient_theorem"),
    ProofSpec("causality", "proofs.causality"),
    ProofSpec("reinforce_averaging", "proofs.reinforce_averaging"),
    ProofSpec("batch_baseline", "proofs.batch_baseline"),
    ProofSpec("returns", "proofs.returns"),
    ProofSpec("gae", "proofs.gae"),
    ProofSpec("ppo_clip", "proofs.ppo_clip"),
    ProofSpec("ppo_dual_clip", "proofs.ppo_clip", "prove_dual_clip", "TITLE_DUAL"),
    ProofSpec("ppo_ratio_escape", "proofs.ppo_ratio_escape"),
    ProofSpec("surrogate", "proofs.surrogate"),
    ProofSpec("value_loss", "proofs.value_loss"),
    ProofSpec("kl_estimators", "proofs.kl_estimators"),
    ProofSpec("short_corridor", "proofs.short_corridor"),
    ProofSpec("gridworld", "proofs.gridworld"),
)


def run_proof(spec: ProofSpec) -> tuple[ProofResult, float]:
    """Run one proof with its true (default) claims; returns the result and its wall time."""
    t0 = time.perf_counter()
    result = spec.load()()
    return result, time.perf_counter() - t0


def run_all() -> list[tuple[ProofSpec, ProofResult, float]]:
    """Run every proof in :data:`PROOFS`."""
    return [(spec, *run_proof(spec)) for spec in PROOFS]
