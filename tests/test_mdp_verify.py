"""The ``pgmath verify --area mdp`` rows (pgmath.mdp.verify): spec rows plus statistical rows.

The spec rows' properties and wrong variants are tested for every implementation in
tests/test_specs.py; here: the area's table is the spec rows plus the statistical rows, all pass
in quick mode, and the statistical rows fail on a deliberately wrong sampler.
"""

from __future__ import annotations

import pathlib

import torch

from pgmath.mdp import sample_episodes, short_corridor_optimum
from pgmath.mdp import verify as mdp_verify
from pgmath.specs import SPECS, verify_rows
from pgmath.verification import VerifyContext, run_row

CTX = VerifyContext(quick=True)


def test_every_row_passes_in_quick_mode():
    rows = mdp_verify.rows(CTX)
    spec_rows = verify_rows(SPECS, "mdp")
    assert [(r.name, r.check) for r in rows[: len(spec_rows)]] == [(r.name, r.check) for r in spec_rows]
    # 4 sampler/env rows + 5 off-policy/NPG/TRPO rows (issue 16) after the spec rows
    assert len(rows) == len(spec_rows) + 9 and len(rows) >= 11
    checks = " ".join(r.check for r in rows)
    assert "S&B Fig. 4.1" in checks and "S&B Ex. 13.1" in checks
    assert {"sampler occupancy chi-square", "gymnasium envs"} <= {r.name for r in rows}
    for row in rows:
        res = run_row(row, CTX)
        assert res.passed, (row.name, row.check, res.statistic, res.error)


def test_mdp_specs_cover_the_exact_quantities():
    names = {s.name for s in SPECS.values() if s.area == "mdp"}
    assert names >= {"state_values", "action_values", "discounted_occupancy", "exact_policy_gradient",
                     "finite_horizon_values", "vtrace_fixed_point", "retrace_fixed_point",
                     "fisher_information", "natural_gradient"}


def test_short_corridor_optimum_depends_on_the_evaluation_it_is_given():
    def undiscounted_one_step(mdp, pi):  # a wrong evaluation: one step of reward only
        return mdp.expected_rewards(pi)

    p, J = short_corridor_optimum()
    assert abs(p - (2 - 2**0.5)) < 1e-6 and abs(J - (-6 - 4 * 2**0.5)) < 1e-9
    assert short_corridor_optimum(undiscounted_one_step)[1] == -1.0


def test_sampler_row_catches_a_wrong_sampler():
    def stale_action_sampler(mdp, pi, n, T, *, generator):
        # bug: actions drawn from the uniform policy instead of pi
        uniform = torch.full_like(pi, 1.0 / pi.shape[1])
        return sample_episodes(mdp, uniform, n, T, generator=generator)

    assert not mdp_verify.verify_sampler_chi_square(CTX, stale_action_sampler).passed


def test_artifacts_are_written(tmp_path: pathlib.Path):
    paths = mdp_verify.write_artifacts(CTX, tmp_path)
    assert {p.name for p in paths} == {"mdp-short-corridor.json", "mdp-short-corridor.png", "mdp-figure-4-1.json"}
    assert all(p.stat().st_size > 0 for p in paths)


def test_gradient_proof_accepts_the_implementations_and_rejects_the_wrong_variants():
    """The spec's proof (proofs/policy_gradient_theorem.py) takes an implementation in the spec's
    signature: the theorem, autograd and the reference pass it, every wrong variant fails it."""
    spec = SPECS["exact_policy_gradient"]
    prove = spec.load_proof()
    assert all(prove(impl=f).passed for f in spec.implementations.values())
    failing = [v.name for v in spec.wrong_variants if prove(impl=v.fn).passed]
    assert not failing, failing
