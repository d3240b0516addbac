"""Symbolic proofs of the identities pgmath relies on (sympy), tied to the code that computes them.

Each module proves one identity with a function ``prove(...) -> ProofResult`` whose keyword
arguments are the *claimed* formulas, the true ones by default; feeding a wrong formula makes
the proof fail, which is how tests/test_proofs.py shows every proof can fail. A proof whose
statement is computed by a pgmath function also takes that function as ``impl=`` (default: the
pgmath function named by the module's ``IMPL``; any callable with its public signature) and
compares it numerically with the proven closed form, so a wrong *implementation* fails the proof
too. Extra implementation keywords end in ``_impl`` (``IMPLS`` maps each keyword to its dotted
default); :func:`~.core.impl_keywords` lists them for any proof function.

The package lives at the top of the repository (``proofs/``) and is installed as
``pgmath.proofs``; its modules import each other relatively, so from a checkout
``python -m proofs`` runs them all and prints a table and ``python -m proofs.gae`` runs one,
while pgmath (``pgmath verify``, through :mod:`.suite`) and the tests import ``pgmath.proofs``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from pgmath.optional import extra_error

try:
    import sympy  # noqa: F401  (an optional dependency: say which extra brings it)
except ImportError as exc:
    raise extra_error("proofs", "pgmath.proofs", exc) from exc

from .core import Claim, ProofResult, impl_keywords

__all__ = ["PROOFS", "Claim", "ProofResult", "ProofSpec", "impl_keywords", "run_all", "run_proof"]


@dataclass(frozen=True)
class ProofSpec:
    """Where a proof lives: function ``function`` of module ``name`` of this package.

    ``title_attr`` / ``impl_attr`` name the module constants holding the proof's title and the
    dotted name of the pgmath function its ``impl`` defaults to (``None``: no pgmath function);
    ``impls_attr`` the optional mapping of every implementation keyword to its dotted default.
    """

    key: str
    name: str
    function: str = "prove"
    title_attr: str = "TITLE"
    impl_attr: str = "IMPL"
    impls_attr: str = "IMPLS"

    @property
    def module(self) -> str:
        """The module's import name under the package in use (``pgmath.proofs.gae`` or ``proofs.gae``)."""
        return f"{__name__}.{self.name}"

    @property
    def path(self) -> str:
        """The module's file, relative to the repository root."""
        return f"proofs/{self.name}.py"

    def _module(self) -> ModuleType:
        return importlib.import_module(self.module)

    def load(self) -> Callable[..., ProofResult]:
        return getattr(self._module(), self.function)

    @property
    def title(self) -> str:
        return getattr(self._module(), self.title_attr)

    @property
    def impl(self) -> str | None:
        """Dotted name of the pgmath function the proof's ``impl`` keyword defaults to."""
        return getattr(self._module(), self.impl_attr)

    @property
    def impls(self) -> dict[str, str]:
        """Every implementation keyword of the proof function → dotted name of its default."""
        mapping = getattr(self._module(), self.impls_attr, None)
        if mapping is not None:
            return dict(mapping)
        return {} if self.impl is None else {"impl": self.impl}


#: Every proof, in the order of the table.
PROOFS: tuple[ProofSpec, ...] = (
    ProofSpec("log_derivative", "log_derivative"),
    ProofSpec("softmax_score", "softmax_score"),
    ProofSpec("categorical", "categorical"),
    ProofSpec("gaussian", "gaussian"),
    ProofSpec("policy_gradient_theorem", "policy_gradient_theorem"),
    ProofSpec("causality", "causality"),
    ProofSpec("reinforce_averaging", "reinforce_averaging"),
    ProofSpec("batch_baseline", "batch_baseline"),
    ProofSpec("returns", "returns"),
    ProofSpec("gae", "gae"),
    ProofSpec("vtrace", "vtrace"),
    ProofSpec("ppo_clip", "ppo_clip"),
    ProofSpec("ppo_dual_clip", "ppo_clip", "prove_dual_clip", "TITLE_DUAL", "IMPL_DUAL"),
    ProofSpec("ppo_ratio_escape", "ppo_ratio_escape"),
    ProofSpec("surrogate", "surrogate"),
    ProofSpec("value_loss", "value_loss"),
    ProofSpec("kl_estimators", "kl_estimators"),
    ProofSpec("short_corridor", "short_corridor"),
    ProofSpec("gridworld", "gridworld"),
)


def run_proof(spec: ProofSpec) -> tuple[ProofResult, float]:
    """Run one proof with its true (default) claims; returns the result and its wall time."""
    t0 = time.perf_counter()
    result = spec.load()()
    return result, time.perf_counter() - t0


def run_all() -> list[tuple[ProofSpec, ProofResult, float]]:
    """Run every proof in :data:`PROOFS`."""
    return [(spec, *run_proof(spec)) for spec in PROOFS]
