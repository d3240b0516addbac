"""The estimator rows of ``pgmath verify``: all pass with --quick, a broken estimator fails, plots are written.

The statistical rows use fixed seeds (``VerifyContext.seed``), so these tests are deterministic;
the suite's false-alarm budget is stated in :mod:`pgmath.estimators.verify`.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pgmath.estimators import policy_gradient
from pgmath.estimators.verify import rows, write_artifacts
from pgmath.verification import VerifyContext, run_row

QUICK = VerifyContext(quick=True)


@pytest.fixture(scope="module")
def quick_results():
    return [run_row(c, QUICK) for c in rows(QUICK)]


def test_every_quick_row_passes(quick_results):
    failed = [(r.name, r.check, r.statistic, r.error) for r in quick_results if not r.passed]
    assert not failed, failed


def test_rows_cover_every_estimator_and_kind(quick_results):
    names = {r.name for r in quick_results}
    assert set(policy_gradient.ESTIMATORS) <= names
    kinds = [r.check.split(":")[0] for r in quick_results]
    assert kinds.count("unbiased") >= 17
    assert kinds.count("detected as biased") == 5
    assert kinds.count("mean = predicted biased E[ĝ]") == 5
    # the biased rows really rejected (p < α) and report the predicted bias and power
    for r in quick_results:
        if r.check.startswith("detected"):
            assert r.data["p_value"] < 1e-3 and r.data["power"] > 0.999
            lo, hi = r.data["relative_bias_ci"]
            assert lo <= r.data["predicted_relative_bias"] <= hi
    json.dumps([r.to_json() for r in quick_results])  # the report is JSON-serializable


def test_a_broken_estimator_fails_its_row(monkeypatch):
    """Drop γᵗ from reward-to-go (a real bug): its 'unbiased' row on the discounted MDP must fail."""
    spec = policy_gradient.ESTIMATORS["reward_to_go"]

    def no_discount(r, o):
        return r.returns() * r.valid

    monkeypatch.setitem(policy_gradient.ESTIMATORS, "reward_to_go", dataclasses.replace(spec, weights=no_discount))
    ctx = VerifyContext(quick=True, seed=11)
    row = next(c for c in rows(ctx) if c.name == "reward_to_go" and c.check.startswith("unbiased")
               and "γ = 0.9" in c.check)
    result = run_row(row, ctx)
    assert not result.passed and result.data["p_value"] < 1e-3


def test_write_artifacts(tmp_path):
    ctx = VerifyContext(samples=3000, seed=3)
    paths = write_artifacts(ctx, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["estimators_bias_variance.png", "estimators_cosine.png", "estimators_curves.json",
                     "estimators_gae_bias.png"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "estimators_curves.json").read_text())
    assert set(data) >= {"error_curves", "cosine_curves", "variance", "gae_bias_curve"}
    gb = data["gae_bias_curve"]
    assert gb["lam"][0] == 0.0 and gb["lam"][-1] == 1.0 and gb["rel_bias"][-1] < 1e-12
    assert len(gb["sampled"]["lam"]) == 5


def test_samples_override_is_used():
    ctx = VerifyContext(samples=300, seed=5)
    row = next(c for c in rows(ctx) if c.name == "reinforce")
    assert run_row(row, ctx).data["n"] == 300
    with pytest.raises(ValueError, match="samples"):
        rows(VerifyContext(samples=1))[0].fn(VerifyContext(samples=1))


@pytest.mark.gpu
def test_quick_rows_on_cuda():
    ctx = VerifyContext(device=torch.device("cuda"), quick=True)
    failed = [(r.name, r.statistic) for r in (run_row(c, ctx) for c in rows(ctx)) if not r.passed]
    assert not failed, failed
