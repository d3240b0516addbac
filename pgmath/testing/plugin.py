"""pytest plugin: fixtures that check your implementations against pgmath's references.

Loaded automatically once pgmath is installed (``pytest11`` entry point ``pgmath``), or with
``pytest -p pgmath.testing.plugin``. In a test::

    def test_my_gae(check_gae):
        from mytrainer import compute_gae
        check_gae(compute_gae, convention="sb3")

Fixtures: ``check_gae``, ``check_returns``, ``check_ppo_loss``, ``check_kl_estimator``,
``check_group_advantages`` (the functions of :mod:`pgmath.testing.checks` with the session's
settings applied), ``pgmath_checks`` (all of them on one object: ``pgmath_checks.gae(fn)``,
``pgmath_checks.ppo_loss(fn)``, …) and ``pgmath_mutants`` (the
catalogue of buggy implementations, to show that a check of your own rejects them).

Options (command line, or ``[tool.pytest.ini_options]``): ``--pgmath-max-examples N`` /
``pgmath_max_examples = N`` (property-based examples per check; default
:data:`pgmath.testing.checks.DEFAULT_MAX_EXAMPLES`), ``--pgmath-seed S`` / ``pgmath_seed = S``
(a Hypothesis seed; default derandomized, so CI runs are reproducible).

Checked by: ``tests/test_testing_cli.py`` (pytester runs of passing and failing checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pgmath.testing import checks
from pgmath.testing.checks import CheckOptions, CheckReport
from pgmath.testing.mutants import Mutant, catalogue

__all__ = ["PgmathChecks"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgmath", "pgmath.testing: checks against pgmath's references")
    group.addoption("--pgmath-max-examples", type=int, default=None,
                    help="property-based examples per pgmath check (default 100)")
    group.addoption("--pgmath-seed", type=int, default=None,
                    help="Hypothesis seed of the pgmath checks (default: derandomized)")
    parser.addini("pgmath_max_examples", "property-based examples per pgmath check", default=None)
    parser.addini("pgmath_seed", "Hypothesis seed of the pgmath checks", default=None)


def _setting(config: pytest.Config, name: str) -> int | None:
    value = config.getoption(f"--pgmath-{name.replace('_', '-')}")
    if value is None:
        raw = config.getini(f"pgmath_{name}")
        value = int(raw) if raw not in (None, "") else None
    return value


#: fixture / attribute name -> the check it runs
_CHECKS = {
    "gae": checks.check_gae,
    "returns": checks.check_returns,
    "ppo_loss": checks.check_ppo_loss,
    "kl_estimator": checks.check_kl_estimator,
    "group_advantages": checks.check_group_advantages,
}


class PgmathChecks:
    """The checks of :mod:`pgmath.testing.checks` with a session's ``max_examples`` / ``seed``.

    Attributes ``gae``, ``returns``, ``ppo_loss``, ``kl_estimator``, ``group_advantages``
    (``pgmath_checks.gae(fn)`` runs :func:`~pgmath.testing.check_gae`): the checks, run with
    :attr:`options` unless the call passes its own ``options=``; keywords override either.
    """

    def __init__(self, max_examples: int | None = None, seed: int | None = None):
        self.max_examples = checks.DEFAULT_MAX_EXAMPLES if max_examples is None else max_examples
        self.seed = seed
        self.options = CheckOptions(max_examples=self.max_examples, seed=seed)

    def __getattr__(self, name: str) -> Callable[..., CheckReport]:
        if name not in _CHECKS:
            raise AttributeError(name)
        check = _CHECKS[name]

        def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> CheckReport:
            kwargs.setdefault("options", self.options)
            return check(fn, *args, **kwargs)

        run.__name__ = check.__name__
        run.__doc__ = check.__doc__
        return run


@pytest.fixture
def pgmath_checks(request: pytest.FixtureRequest) -> PgmathChecks:
    """Every pgmath check, configured by ``--pgmath-max-examples`` / ``--pgmath-seed``."""
    cfg = request.config
    return PgmathChecks(_setting(cfg, "max_examples"), _setting(cfg, "seed"))


def _check_fixture(name: str):
    def fixture(pgmath_checks: PgmathChecks):
        return getattr(pgmath_checks, name)

    fixture.__name__ = f"check_{name}"
    fixture.__doc__ = f":func:`pgmath.testing.check_{name}` with the session's settings."
    return pytest.fixture(name=f"check_{name}")(fixture)


# the fixtures check_gae, check_returns, check_ppo_loss, check_kl_estimator, check_group_advantages
for _name in _CHECKS:
    globals()[f"check_{_name}"] = _check_fixture(_name)


@pytest.fixture
def pgmath_mutants() -> tuple[Mutant, ...]:
    """The catalogue :data:`pgmath.testing.mutants.MUTANTS` of buggy implementations."""
    return catalogue()
