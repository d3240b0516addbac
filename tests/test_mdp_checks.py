"""The ``pgmath verify`` rows of pgmath.mdp.checks pass, and fail on deliberately wrong implementations."""

from __future__ import annotations

import pathlib

import torch

from pgmath.mdp import TabularMDP, gridworld, sample_episodes
from pgmath.mdp import checks as mdp_checks
from pgmath.verification import VerifyContext, run_check

CTX = VerifyContext(quick=True)


def test_every_row_passes_in_quick_mode():
    rows = mdp_checks.checks(CTX)
    assert len(rows) >= 10
    names = {r.name for r in rows}
    assert {"S&B Ex. 13.1 optimum", "S&B Fig. 4.1 values", "sampler occupancy chi-square"} <= names
    for row in rows:
        res = run_check(row, CTX)
        assert res.passed, (row.name, row.check, res.statistic, res.error)


def _q_instead_of_a(mdp: TabularMDP, logits: torch.Tensor) -> torch.Tensor:
    pi = mdp.policy(logits)
    return mdp.discounted_occupancy(pi)[:, None] * pi * mdp.action_values(pi)


def _normalized_occupancy(mdp: TabularMDP, logits: torch.Tensor) -> torch.Tensor:
    pi = mdp.policy(logits)
    return mdp.discounted_occupancy(pi, normalized=True)[:, None] * pi * mdp.advantages(pi)


def test_gradient_rows_catch_wrong_formulas():
    for wrong in (_q_instead_of_a, _normalized_occupancy):
        assert not mdp_checks.check_theorem_vs_autograd(CTX, wrong).passed
        assert not mdp_checks.check_finite_differences(CTX, wrong).passed


def test_value_and_textbook_rows_catch_wrong_implementations():
    def values_without_discount(mdp, pi):  # forgets γ
        return mdp.with_gamma(1.0 if mdp.terminal.any() else 0.999).state_values(pi)

    assert not mdp_checks.check_solve_vs_iterative(CTX, values_without_discount).passed
    # a grid with a wrong discount or a missing terminal corner does not reproduce Figure 4.1
    assert not mdp_checks.check_figure_4_1(CTX, lambda device: gridworld(gamma=0.99, device=device)).passed
    assert not mdp_checks.check_figure_4_1(CTX, lambda device: gridworld(terminals=[(0, 0)], device=device)).passed
    # an optimum read off a deterministic policy misses Example 13.1
    assert not mdp_checks.check_example_13_1(CTX, lambda device: (1.0, -3.0)).passed


def test_sampler_row_catches_a_wrong_sampler():
    def stale_action_sampler(mdp, pi, n, T, *, generator):
        # bug: actions drawn from the uniform policy instead of pi
        uniform = torch.full_like(pi, 1.0 / pi.shape[1])
        return sample_episodes(mdp, uniform, n, T, generator=generator)

    assert not mdp_checks.check_sampler_chi_square(CTX, stale_action_sampler).passed


def test_artifacts_are_written(tmp_path: pathlib.Path):
    paths = mdp_checks.write_artifacts(CTX, tmp_path)
    assert {p.name for p in paths} == {"mdp-short-corridor.json", "mdp-short-corridor.png", "mdp-figure-4-1.json"}
    assert all(p.stat().st_size > 0 for p in paths)
