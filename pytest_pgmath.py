"""The pytest plugin of pgmath, thin: loading it imports nothing but pytest.

Registered by the ``pytest11`` entry point ``pgmath`` when pgmath is installed (``pytest -p
no:pgmath`` turns it off; ``-p pgmath`` loads it where plugin autoloading is disabled;
``pytest -p pgmath.testing.plugin`` is the same plugin). It adds two options and seven fixtures;
torch, hypothesis and :mod:`pgmath.testing` are imported only when a test asks for one of the
fixtures, so an unrelated pytest run in an environment where pgmath is installed starts no
slower (measured in ``docs/testing/index.md``, "What the plugin costs"). In a test::

    def test_my_gae(check_gae):
        from mytrainer import compute_gae
        check_gae(compute_gae, convention="sb3")

Fixtures: ``check_gae``, ``check_returns``, ``check_ppo_loss``, ``check_kl_estimator``,
``check_group_advantages``, ``pgmath_checks`` (all of them on one object) and
``pgmath_mutants`` (the catalogue of buggy implementations); see :mod:`pgmath.testing.plugin`.

Options (command line, or ``[tool.pytest.ini_options]``): ``--pgmath-max-examples N`` /
``pgmath_max_examples = N``, ``--pgmath-seed S`` / ``pgmath_seed = S``.

Checked by: ``tests/test_packaging.py`` (loading the plugin imports neither torch nor pgmath;
an unrelated pytest run is no slower), ``tests/test_testing_cli.py`` (pytester runs of the
fixtures).
"""

from __future__ import annotations

from typing import Any

import pytest

#: The names of the checks; fixture ``check_<name>`` runs ``pgmath.testing.check_<name>``.
CHECK_NAMES: tuple[str, ...] = ("gae", "returns", "ppo_loss", "kl_estimator", "group_advantages")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgmath", "pgmath.testing: checks against pgmath's references")
    try:
        group.addoption("--pgmath-max-examples", type=int, default=None,
                        help="property-based examples per pgmath check (default 100)")
        group.addoption("--pgmath-seed", type=int, default=None,
                        help="Hypothesis seed of the pgmath checks (default: derandomized)")
    except ValueError:  # registered twice (entry point and -p pgmath.testing.plugin): once is enough
        return
    parser.addini("pgmath_max_examples", "property-based examples per pgmath check", default=None)
    parser.addini("pgmath_seed", "Hypothesis seed of the pgmath checks", default=None)


def setting(config: pytest.Config, name: str) -> int | None:
    """The session's ``max_examples`` / ``seed``: the command line, else the ini file, else None."""
    value = config.getoption(f"--pgmath-{name.replace('_', '-')}")
    if value is None:
        raw = config.getini(f"pgmath_{name}")
        value = int(raw) if raw not in (None, "") else None
    return value


@pytest.fixture
def pgmath_checks(request: pytest.FixtureRequest) -> Any:
    """Every pgmath check, configured by ``--pgmath-max-examples`` / ``--pgmath-seed``
    (a :class:`pgmath.testing.plugin.PgmathChecks`)."""
    from pgmath.testing.plugin import PgmathChecks  # the heavy imports, on first use

    cfg = request.config
    return PgmathChecks(setting(cfg, "max_examples"), setting(cfg, "seed"))


def _check_fixture(name: str):
    def fixture(pgmath_checks: Any):
        return getattr(pgmath_checks, name)

    fixture.__name__ = f"check_{name}"
    fixture.__doc__ = f":func:`pgmath.testing.check_{name}` with the session's settings."
    return pytest.fixture(name=f"check_{name}")(fixture)


# the fixtures check_gae, check_returns, check_ppo_loss, check_kl_estimator, check_group_advantages
check_gae = _check_fixture("gae")
check_returns = _check_fixture("returns")
check_ppo_loss = _check_fixture("ppo_loss")
check_kl_estimator = _check_fixture("kl_estimator")
check_group_advantages = _check_fixture("group_advantages")


@pytest.fixture
def pgmath_mutants() -> tuple[Any, ...]:
    """The catalogue :data:`pgmath.testing.mutants.MUTANTS` of buggy implementations."""
    from pgmath.testing.mutants import catalogue

    return catalogue()
