"""The pytest fixtures' working half: :class:`PgmathChecks`, the checks with a session's settings.

The plugin itself is the thin module :mod:`pytest_pgmath` (entry point ``pgmath``, loaded when
pgmath is installed), which imports nothing heavy until a test asks for a fixture; this module is
what its fixtures then import. ``pytest -p pgmath.testing.plugin`` still works (it re-exports the
thin plugin's hooks and fixtures; loaded both ways, the options are added once). In a test::

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

Checked by: ``tests/test_testing_cli.py`` (pytester runs of passing and failing checks),
``tests/test_packaging.py`` (the thin plugin stays thin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgmath.testing import checks
from pgmath.testing.checks import CheckOptions, CheckReport
from pytest_pgmath import (
    check_gae,
    check_group_advantages,
    check_kl_estimator,
    check_ppo_loss,
    check_returns,
    pgmath_checks,
    pgmath_mutants,
    pytest_addoption,
)

__all__ = ["PgmathChecks"]

# the thin plugin's hooks and fixtures, for ``pytest -p pgmath.testing.plugin``
PLUGIN_OBJECTS = (check_gae, check_group_advantages, check_kl_estimator, check_ppo_loss,
                  check_returns, pgmath_checks, pgmath_mutants, pytest_addoption)


#: fixture / attribute name -> the check it runs
_CHECKS = {
    "gae": checks.check_gae,
    "returns": checks.check_returns,
    "ppo_loss": checks.check_ppo_loss,
    "kl_estimator": checks.check_kl_estimator,
    "group_advantages": checks.check_group_advantages,
    "policy_loss": checks.check_policy_loss,
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
        key = name.removeprefix("check_")  # pgmath_checks.check_gae is pgmath_checks.gae
        if key not in _CHECKS:
            raise AttributeError(name)
        check = _CHECKS[key]

        def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> CheckReport:
            kwargs.setdefault("options", self.options)
            return check(fn, *args, **kwargs)

        run.__name__ = check.__name__
        run.__doc__ = check.__doc__
        return run
