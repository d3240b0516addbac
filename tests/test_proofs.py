"""Tests of the sympy proofs (proofs/), the proofs verify suite, and the documentation build.

Every proof must pass with its true statement and REJECT at least one wrong variant fed in
through its arguments — a proof that cannot fail proves nothing. The errata demonstrations at
the end check the source article's code bugs that the docs cite (docs/errata.md).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest
import sympy as sp
import torch

from proofs import (
    PROOFS,
    ProofSpec,
    gae,
    gridworld,
    kl_estimators,
    log_derivative,
    policy_gradient_theorem,
    ppo_clip,
    ppo_ratio_escape,
    reinforce_averaging,
    short_corridor,
    softmax_score,
)
from proofs._core import identity

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPECS = {spec.key: spec for spec in PROOFS}


# ---------------------------------------------------------------------------------------------
# every proof passes with the true statement — read from one `python -m proofs --json` run, which
# also checks the runner itself (exit status 0, the table)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("proofs") / "proofs.json"
    out = subprocess.run(
        [sys.executable, "-m", "proofs", "--json", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    records = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    return {"out": out, "records": {r["key"]: r for r in records}}


@pytest.mark.parametrize("spec", PROOFS, ids=lambda s: s.key)
def test_proof_passes_with_true_statement(spec: ProofSpec, full_run: dict[str, Any]) -> None:
    record = full_run["records"].get(spec.key)
    assert record is not None, full_run["out"].stdout + full_run["out"].stderr
    assert record["passed"], json.dumps(record, indent=1, ensure_ascii=False)
    assert record["claims"] and all(c["passed"] for c in record["claims"])


def test_python_m_proofs_runs_all_and_exits_0(full_run: dict[str, Any]) -> None:
    out = full_run["out"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(PROOFS)}/{len(PROOFS)} proofs passed" in out.stdout
    assert "[a = b]" in out.stdout  # statements are printed verbatim, not eaten as rich markup


# ---------------------------------------------------------------------------------------------
# every proof rejects wrong variants: (proof key, keyword arguments, a rejected claim's text)
# ---------------------------------------------------------------------------------------------
WRONG_VARIANTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("log_derivative", "trick without p", {"grad_identity": lambda p, lp, th: sp.diff(lp, th)}, "∇p = p ∇log p"),
    ("log_derivative", "score averaged uniformly", {"weights": log_derivative.uniform_weights}, "E_{a∼π}"),
    ("log_derivative", "action-dependent baseline", {"baseline": lambda a, q: q[a]}, "baseline invariance"),
    ("softmax_score", "missing −π(b)", {"claimed": lambda a, b, pi: sp.KroneckerDelta(a, b)}, "score"),
    ("softmax_score", "π(a) for π(b)", {"claimed": lambda a, b, pi: sp.KroneckerDelta(a, b) - pi[a]}, "score"),
    (
        "categorical",
        "entropy sign error",
        {"entropy": lambda th, pi, lz: lz + sum(p * t for p, t in zip(pi, th))},
        "H(π)",
    ),
    ("gaussian", "entropy without ½", {"entropy_formula": lambda ls: ls + sp.log(2 * sp.pi) / 2}, "entropy"),
    (
        "gaussian",
        "KL without −½",
        {"kl_formula": lambda m1, s1, m2, s2: sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2)},
        "KL",
    ),
    (
        "policy_gradient_theorem",
        "undiscounted (stationary) visitation",
        {"occupancy": policy_gradient_theorem.stationary_visitation},
        "∂J/∂θ",
    ),
    ("policy_gradient_theorem", "μ₀ only", {"occupancy": policy_gradient_theorem.initial_only}, "∂J/∂θ"),
    ("causality", "future reward claimed to vanish", {"vanishing_pairs": ((0, 1),)}, "E[∇log π(a0|s0) r1]"),
    ("causality", "same-step reward claimed to vanish", {"vanishing_pairs": ((1, 1),)}, "r1"),
    ("causality", "no γᵗ weight", {"time_weight": lambda t, g: 1}, "w(t)"),
    ("reinforce_averaging", "1/T averaging", {"length_weight": reinforce_averaging.article_average}, "constant"),
    ("batch_baseline", "batch mean claimed unbiased", {"claimed_factor": 1}, "claimed factor"),
    ("returns", "current reward discounted", {"step": lambda x, c, y: c * (x + y)}, "closed form"),
    ("returns", "no discount", {"step": lambda x, c, y: x + y}, "closed form"),
    ("gae", "the source article's recursion", {"step": gae.article_step}, "recursion = series"),
    ("gae", "λ on the wrong term", {"step": gae.lambda_on_wrong_term}, "recursion = series"),
    ("gae", "γ missing in the carry", {"step": gae.missing_gamma}, "λ = 1"),
    ("ppo_clip", "max instead of min", {"objective": ppo_clip.max_instead_of_min}, "ρA − L ≥ 0"),
    ("ppo_clip", "gradient never zero", {"gradient": lambda r, a, lo, hi: a}, "∂L/∂ρ"),
    ("ppo_dual_clip", "dual clip for A > 0 too", {"objective": ppo_clip.dual_clip_all_signs}, "A > 0"),
    (
        "ppo_dual_clip",
        "no dual clip",
        {"objective": lambda rho, adv, lo, hi, c: ppo_clip.clipped_surrogate(rho, adv, lo, hi)},
        "ρ > c",
    ),
    (
        "ppo_ratio_escape",
        "tabular features (no sharing)",
        {"features": ppo_ratio_escape.TABULAR_FEATURES, "theta": ppo_ratio_escape.TABULAR_THETA},
        "further out",
    ),
    ("surrogate", "old occupancy claimed exact", {"occupancy_of": "old"}, "old policy"),
    ("value_loss", "squared error without ½", {"loss": lambda v, g: (v - g) ** 2}, "V − g"),
    ("kl_estimators", "k3 with the sign flipped", {"est3": kl_estimators.k3_sign_flipped}, "f''(x) > 0"),
    ("kl_estimators", "k1 = log q − log p", {"est1": lambda lp, lq: lq - lp}, "E_p[k1]"),
    ("kl_estimators", "k2 without ½", {"est2": lambda lp, lq: (lq - lp) ** 2}, "d^2/dε^2"),
    ("short_corridor", "argmax ½", {"claimed_argmax": sp.Rational(1, 2)}, "argmax"),
    ("short_corridor", "J(p) sign error", {"claimed_objective": lambda p: (2 * p - 4) / (p * (p - 1))}, "J(p)"),
    ("short_corridor", "maximum −12", {"claimed_max": sp.Integer(-12)}, "J(p*)"),
    ("short_corridor", "corridor not reversed", {"dynamics": short_corridor.PLAIN_CORRIDOR}, "J(p)"),
    ("gridworld", "one entry off by one", {"claimed": ((0, -14, -20, -22), (-14, -17, -20, -20), (-20, -20, -18, -14), (-22, -20, -14, 0))}, "table"),
    ("gridworld", "discounted γ = 0.9", {"gamma": sp.Rational(9, 10)}, "table"),
]


@pytest.mark.parametrize(
    ("key", "label", "kwargs", "rejected"),
    WRONG_VARIANTS,
    ids=[f"{k}-{label}" for k, label, _, _ in WRONG_VARIANTS],
)
def test_proof_rejects_wrong_variant(key: str, label: str, kwargs: dict[str, Any], rejected: str) -> None:
    result = SPECS[key].load()(**kwargs)
    assert not result.passed, f"{key} accepted a wrong variant ({label})"
    failed = [c.statement for c in result.claims if not c.passed]
    assert any(rejected in s for s in failed), f"expected a rejected claim containing {rejected!r}: {failed}"


def test_every_proof_has_a_wrong_variant() -> None:
    assert {k for k, *_ in WRONG_VARIANTS} == set(SPECS)


def test_rejection_comes_with_an_exact_counterexample() -> None:
    result = softmax_score.prove(claimed=lambda a, b, pi: sp.KroneckerDelta(a, b))
    claim = result.claims[0]
    assert not claim.passed and "left - right" in claim.details and "theta_0=" in claim.details


# ---------------------------------------------------------------------------------------------
# what the proofs establish, against published numbers
# ---------------------------------------------------------------------------------------------
def test_short_corridor_matches_sutton_barto_example_13_1() -> None:
    """S&B (2018) Example 13.1: best p(right) "about 0.59", value "about −11.6"."""
    data = short_corridor.prove().data
    assert data["p_star_exact"] == "2 - sqrt(2)" and data["J_star_exact"] == "-6 - 4*sqrt(2)"
    assert round(data["p_star"], 2) == 0.59  # the book's rounding: 0.5858 → 0.59
    assert round(data["J_star"], 1) == -11.7 and abs(data["J_star"] - (-11.6)) < 0.06  # −11.657; book: ≈ −11.6
    assert data["J"] == "-2*(p - 2)/(p*(p - 1))"  # = (2p − 4)/(p(1 − p)), derived not typed


def test_gridworld_reproduces_figure_4_1() -> None:
    assert gridworld.prove().data["values"] == [list(r) for r in gridworld.FIGURE_4_1]


def test_ppo_ratio_escape_numbers() -> None:
    data = ppo_ratio_escape.prove().data
    assert 0.8 < data["rho1"] < 1.2 < data["rho2"] < data["rho2_after_step"]


def test_article_advantage_recursion_is_discounted_sum_of_r_minus_v() -> None:
    """What the article's loop computes instead of GAE: Aₜ = Σₖ γᵏ Πm (rₜ₊ₖ − Vₜ₊ₖ)."""
    g, lam = sp.symbols("gamma lambda", positive=True)
    r = list(sp.symbols("r_0:4", real=True))
    v = list(sp.symbols("V_0:5", real=True))
    m = list(sp.symbols("m_0:4", real=True))
    got = gae._run(gae.article_step, r, v, m, g, lam)
    expected = [
        sum(g**k * sp.Mul(*m[t : t + k]) * (r[t + k] - v[t + k]) for k in range(4 - t)) for t in range(4)
    ]
    assert identity("article recursion", got, expected).passed
    # and it is not GAE for any λ: at λ = 1 GAE is G − V, the article subtracts Σγᵏ V too
    assert not identity("article = GAE(λ=1)", got, gae._run(gae.gae_step, r, v, m, g, sp.Integer(1))).passed


# ---------------------------------------------------------------------------------------------
# runners: python -m proofs, single modules, the verify suite
# ---------------------------------------------------------------------------------------------
def test_proof_module_runs_alone() -> None:
    out = subprocess.run([sys.executable, "-m", "proofs.gae"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "proven" in out.stdout


def test_main_exits_1_when_a_proof_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import proofs.__main__ as cli

    def failing(spec: ProofSpec):
        return gae.prove(step=gae.article_step), 0.0

    monkeypatch.setattr(cli, "run_proof", failing)
    assert cli.main(["gae"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_suite_has_one_row_per_proof() -> None:
    from pgmath.verification import VerifyContext, run_check
    from proofs import suite

    ctx = VerifyContext()
    checks = suite.checks(ctx)
    assert [c.area for c in checks] == ["proofs"] * len(PROOFS)
    assert len({c.name for c in checks}) == len(PROOFS)
    row = run_check(checks[1], ctx)  # softmax score: fast
    assert row.passed and row.statistic == "2/2 claims proven" and row.data["file"] == "proofs/softmax_score.py"


# ---------------------------------------------------------------------------------------------
# errata demonstrations (docs/errata.md)
# ---------------------------------------------------------------------------------------------
def test_erratum_softmax_layer_then_categorical_probs_loses_log_prob_and_gradient() -> None:
    """The article's nn.Softmax + Categorical(probs): log-prob clamped, gradient lost."""
    logits = torch.tensor([0.0, -120.0], requires_grad=True)
    via_probs = torch.distributions.Categorical(probs=torch.softmax(logits, -1)).log_prob(torch.tensor(1))
    via_probs.backward()
    assert via_probs.item() > -20  # clamped near log(float32 eps) ≈ −15.9, true value −120
    assert torch.count_nonzero(logits.grad) == 0  # no learning signal at all

    logits2 = torch.tensor([0.0, -120.0], requires_grad=True)
    via_logits = torch.distributions.Categorical(logits=logits2).log_prob(torch.tensor(1))
    via_logits.backward()
    assert via_logits.item() == pytest.approx(-120.0, abs=1e-4)
    # ∂log π(1)/∂θ_b = [1 = b] − π(b) (proofs/softmax_score.py): ≈ (−1, 1)
    assert torch.allclose(logits2.grad, torch.tensor([-1.0, 1.0]), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# documentation
# ---------------------------------------------------------------------------------------------
MY_DOCS = [p for p in (ROOT / "docs").rglob("*.md") if p.parts[len((ROOT / "docs").parts)] not in {
    "mdp", "estimators", "agents", "llm", "testing", "benchmarks.md"
}]


def test_docs_cite_existing_proof_files() -> None:
    cited = set()
    for page in MY_DOCS:
        cited |= set(re.findall(r"proofs/[a-z_]+\.py", page.read_text(encoding="utf-8")))
    assert cited, "the docs cite no proof"
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"docs cite proof files that do not exist: {missing}"
    uncited = sorted(spec.path for spec in PROOFS if spec.path not in cited)
    assert not uncited, f"proofs not cited by any page: {uncited}"


def test_docs_cite_existing_pgmath_functions() -> None:
    import pgmath

    if not hasattr(pgmath, "gae"):
        pytest.skip("the core (pgmath.gae, …) is not exported yet")
    names = set()
    for page in MY_DOCS:
        names |= set(re.findall(r"`pgmath\.([a-z_]+)`", page.read_text(encoding="utf-8")))
    missing = sorted(n for n in names if not hasattr(pgmath, n) and not (ROOT / "pgmath" / n).is_dir())
    assert not missing, f"docs name pgmath functions that do not exist: {missing}"


def test_reference_values_page_lists_the_proven_numbers() -> None:
    page = (ROOT / "docs" / "reference-values.md").read_text(encoding="utf-8")
    data = short_corridor.prove().data
    assert f"{data['p_star']:.6f}" in page and f"{data['J_star']:.6f}" in page
    for row in gridworld.FIGURE_4_1:
        assert " | ".join(str(x) for x in row) in page


def test_citation_cff_is_valid() -> None:
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    import pgmath

    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == pgmath.__version__
    assert str(cff["date-released"]) == "2026-11-24"
    assert cff["message"] and cff["title"] and cff["authors"]


def test_mkdocs_build_strict(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "errata" / "index.html").exists()
    assert (tmp_path / "site" / "formulas" / "gae" / "index.html").exists()
