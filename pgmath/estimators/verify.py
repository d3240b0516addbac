"""The estimator rows of ``pgmath verify``: which policy-gradient estimators are unbiased, and by how much not.

Set-ups (fixed MDPs and policies; ``ctx.seed`` moves only the episode sampling):

* **corridor** — Sutton & Barto Example 13.1, γ = 1, tabular logits (π(right) ≈ 0.6/0.4/0.69).
* **corridor, linear features** — the same MDP with the book's 2-parameter features
  (:class:`pgmath.mdp.LinearSoftmaxPolicy`, θ = (−1, 0): π(right) = 0.27 in every state): a
  general parameter vector.
* **random MDP** — 5 states (one terminal), 3 actions, γ = 0.9, dynamics/rewards/logits from a
  fixed seed (2): the discounted case, where dropping γᵗ matters.
* **random MDP, γ = 1** — the same dynamics undiscounted: dropping γᵗ is harmless there.

Rows:

1. *unbiased* — every unbiased estimator (and an exact-V critic swapped for V + e where theory
   says it does not matter: the baseline, GAE at λ = 1) passes Hotelling's T² against
   ``exact_policy_gradient`` (p ≥ α = 10⁻³).
2. *detected* — every deliberately biased estimator is rejected (p < α); the row also shows
   its exact bias (:mod:`pgmath.estimators.expected`) and the predicted power.
3. *predicted mean* — the same biased samples are *not* rejected against their exact expected
   value: the bias is the one the theory predicts.
4. *variance* — each baseline / critic lowers the per-episode mean squared error relative to
   REINFORCE on the same episodes (one-sided paired z-test, p < α).
5. *false-alarm rate* — p-values of many independent small REINFORCE sample sets are uniform
   (Kolmogorov–Smirnov, p ≥ α).
6. *GAE bias curve* — b(1) = 0 and b(0) matches its closed form (float64 round-off).

False alarms. Rows of kind 1, 3 and 5 test a true hypothesis at α = 10⁻³ each; there are 26 of
them, so a fresh seed flags at least one correct estimator with probability ≤ 26 · 10⁻³ = 2.6%
(Bonferroni). Rows of kind 2 fail only if the power is insufficient; the predicted miss
probability is printed per row (≤ 10⁻⁶ at the default sizes). With the default seed every row is
deterministic (fixed generators), so the suite is not flaky.

Truncation. Episodes use the step cap of
:func:`pgmath.estimators.policy_gradient.default_max_steps` (Pr(truncation) ≤ 10⁻¹² per
episode); a row fails if any sampled episode was truncated anyway.

Sizes: per set-up, chosen so that every default unbiased row detects a 5 % bias along ∇J with
probability ≥ 0.9 at α = 10⁻³ (short corridor 240 000 episodes, its linear-feature version
500 000 — REINFORCE's variance there is the largest —, the random MDPs 90 000 and 45 000); 5 000
with ``--quick``; ``--samples`` overrides. Every unbiased row states its minimum detectable bias
(:func:`pgmath.stats.min_detectable_bias`, along ∇J and in the worst direction of the
covariance's range) in the table and as ``min_detectable_bias`` in the JSON ``data``; ``--quick``
states its larger one. Below about 5 000 episodes the level of the T² test on heavy-tailed
REINFORCE samples exceeds α (see :mod:`pgmath.stats`).
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from scipy import stats as _sps

from pgmath.estimators.expected import expected_gradient, gae_value_error_bias
from pgmath.estimators.policy_gradient import perturbed_values, samples_for_all
from pgmath.estimators.variance import cosine_curve, error_curve, gae_bias_curve, variance_reduction
from pgmath.mdp import (
    LinearSoftmaxPolicy,
    TabularMDP,
    random_mdp,
    short_corridor,
    short_corridor_features,
)
from pgmath.optional import require
from pgmath.stats import (
    MinDetectableBias,
    UnbiasedTest,
    hotelling_power,
    min_detectable_bias,
    unbiasedness_test,
)
from pgmath.verification import Outcome, VerifyContext, VerifyRow

__all__ = ["ALPHA", "SETUP_KEYS", "rows", "unbiased_row_samples", "verify_false_alarm_rate",
           "verify_gae_bias_endpoints", "write_artifacts"]

ALPHA = 1e-3
#: The power at which each unbiased row states its minimum detectable bias.
POWER = 0.9
F64 = torch.float64
AREA = "estimators"
#: λ of the wrong recursion in the suite: its bias −(1 − λ) ∇J is 30% of ‖∇J‖.
WRONG_LAM = 0.7


# ---------------------------------------------------------------------------- set-ups
@dataclass(frozen=True)
class _Setup:
    key: str
    title: str
    n_full: int
    n_quick: int
    seed_offset: int
    estimators: dict[str, dict]  # label -> {"estimator": name, **options}
    linear: bool = False
    gamma_one: bool = False


def _corridor_logits() -> torch.Tensor:
    return torch.tensor([[0.0, 0.4], [0.4, 0.0], [0.0, 0.8], [0.0, 0.0]], dtype=F64)


def _random_parts() -> tuple[TabularMDP, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    mdp = random_mdp(5, 3, generator=g, gamma=0.9, num_terminal=1)
    logits = 0.5 * torch.randn(5, 3, generator=g, dtype=F64)
    return mdp, logits


def _problem(setup: _Setup, device: torch.device):
    """(mdp, params, policy_fn) of a set-up, on ``device``."""
    if setup.key.startswith("corridor"):
        mdp = short_corridor(device=device)
        if setup.linear:
            fn = LinearSoftmaxPolicy(short_corridor_features(2, device=device))
            return mdp, torch.tensor([-1.0, 0.0], dtype=F64, device=device), fn
        return mdp, _corridor_logits().to(device), None
    mdp, logits = _random_parts()
    if setup.gamma_one:
        mdp = mdp.with_gamma(1.0)
    return mdp.to(device=device), logits.to(device), None


_UNBIASED = ("reinforce", "reward_to_go", "baseline", "actor_critic", "td", "gae")
_BIASED = ("gae_no_discount_weight", "action_dependent_baseline", "off_by_one_return",
           "gae_wrong_recursion", "gae_perturbed_values")


def _setups() -> list[_Setup]:
    plain = {k: {"estimator": k} for k in _UNBIASED}
    rnd = dict(plain)
    rnd["baseline, b = V + e"] = {"estimator": "baseline", "values": "perturbed"}
    rnd["gae, λ = 1, V + e"] = {"estimator": "gae", "lam": 1.0, "values": "perturbed"}
    rnd["td, V + e"] = {"estimator": "td", "values": "perturbed"}
    for k in _BIASED:  # over the deliberately biased rules
        rnd[k] = {"estimator": k}
    rnd["gae_wrong_recursion"] = {"estimator": "gae_wrong_recursion", "lam": WRONG_LAM}
    return [
        _Setup("corridor", "short corridor (γ = 1)", 240_000, 5000, 100,
               {**plain, "gae_no_discount_weight": {"estimator": "gae_no_discount_weight"}}),
        _Setup("corridor_linear", "short corridor, linear features", 500_000, 5000, 200,
               {"reinforce": {"estimator": "reinforce"}, "gae": {"estimator": "gae"}}, linear=True),
        _Setup("random", "random MDP (γ = 0.9)", 90_000, 5000, 300, rnd),
        _Setup("random_g1", "random MDP (γ = 1)", 45_000, 5000, 400,
               {"gae": {"estimator": "gae"}, "gae_no_discount_weight": {"estimator": "gae_no_discount_weight"}},
               gamma_one=True),
    ]


#: The set-ups of the suite, in table order (the keys of :func:`unbiased_row_samples`).
SETUP_KEYS = tuple(s.key for s in _setups())


def _row_kind(setup: _Setup, label: str) -> str:
    """"detected" (a biased rule, rejected), "predicted" (mean = its predicted E[ĝ]) or "unbiased"."""
    if label in _BIASED and not setup.gamma_one and not setup.key.startswith("corridor"):
        return "detected"
    if label == "td, V + e":
        return "predicted"
    return "unbiased"


@dataclass
class _Data:
    """Samples of one set-up: every estimator on the same episodes, plus exact quantities."""

    mdp: TabularMDP
    params: torch.Tensor
    policy_fn: Callable | None
    samples: dict[str, torch.Tensor]
    exact: torch.Tensor
    expected: dict[str, torch.Tensor]
    truncated: int
    n: int
    extra: dict = field(default_factory=dict)


def _resolve(cfg: dict, values_perturbed: torch.Tensor | None) -> dict:
    out = dict(cfg)
    if out.get("values") == "perturbed":
        out["values"] = values_perturbed
    return out


def _episodes(ctx: VerifyContext, setup: _Setup) -> int:
    if ctx.samples is not None:
        if ctx.samples < 3:
            raise ValueError(f"samples must be >= 3, got {ctx.samples}")
        return int(ctx.samples)
    return setup.n_quick if ctx.quick else setup.n_full


class _Suite:
    """Lazily computed samples, shared by the rows (and by write_artifacts for the same ctx)."""

    def __init__(self, ctx: VerifyContext) -> None:
        self.ctx = ctx
        self.setups = {s.key: s for s in _setups()}
        self._data: dict[str, _Data] = {}

    def data(self, key: str) -> _Data:
        if key not in self._data:
            self._data[key] = self._compute(self.setups[key])
        return self._data[key]

    def _compute(self, setup: _Setup) -> _Data:
        dev = self.ctx.device
        mdp, params, fn = _problem(setup, dev)
        pi = (mdp.policy(params) if fn is None else fn(params)).detach()
        Vp = perturbed_values(mdp, mdp.state_values(pi))
        cfgs = {k: _resolve(v, Vp) for k, v in setup.estimators.items()}
        n = _episodes(self.ctx, setup)
        samples, ep = samples_for_all(
            mdp, params, cfgs, n, generator=self.ctx.generator(setup.seed_offset), policy_fn=fn
        )
        exact = mdp.exact_policy_gradient(params) if fn is None else mdp.exact_policy_gradient(fn, params)
        expected = {}
        for label, cfg in cfgs.items():  # over estimators: exact means by linear solves
            c = dict(cfg)
            name = c.pop("estimator")
            expected[label] = expected_gradient(mdp, params, name, policy_fn=fn, **c)
        return _Data(mdp, params, fn, samples, exact, expected, int(ep.truncated.sum()), n,
                     {"values_perturbed": Vp, "mean_length": float(ep.lengths.to(F64).mean())})


@functools.lru_cache(maxsize=2)
def _suite(ctx: VerifyContext) -> _Suite:
    return _Suite(ctx)


def unbiased_row_samples(ctx: VerifyContext, setup: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(exact ∇J, {label: [N, …] samples}) of every "unbiased" row of set-up ``setup``.

    The same episodes (generator, sample size) as the rows of :func:`rows` for ``ctx``, but only
    the estimators with an "unbiased" row are differentiated: the empirical power test
    (``tests/test_estimators_power.py``) biases these samples by 5 % and runs the rows' test.
    """
    setups = {s.key: s for s in _setups()}
    if setup not in setups:
        raise ValueError(f"setup must be one of {list(setups)}, got {setup!r}")
    s = setups[setup]
    mdp, params, fn = _problem(s, ctx.device)
    pi = (mdp.policy(params) if fn is None else fn(params)).detach()
    Vp = perturbed_values(mdp, mdp.state_values(pi))
    cfgs = {k: _resolve(v, Vp) for k, v in s.estimators.items() if _row_kind(s, k) == "unbiased"}
    samples, ep = samples_for_all(mdp, params, cfgs, _episodes(ctx, s),
                                  generator=ctx.generator(s.seed_offset), policy_fn=fn)
    if int(ep.truncated.sum()):
        raise RuntimeError(f"{int(ep.truncated.sum())} truncated episode(s) in set-up {setup!r}")
    exact = mdp.exact_policy_gradient(params) if fn is None else mdp.exact_policy_gradient(fn, params)
    return exact, samples


# ---------------------------------------------------------------------------- rows
def _test_data(t: UnbiasedTest) -> dict:
    return {"statistic": t.statistic, "p_value": t.p_value, "dof": t.dof, "n": t.n, "alpha": t.alpha,
            "relative_bias": t.relative_bias, "relative_bias_ci": list(t.relative_bias_ci),
            "null_residual": t.null_residual, "method": t.method}


def _row(suite: _Suite, key: str, body: Callable[[_Data], Outcome]) -> Callable[[VerifyContext], Outcome]:
    """A row on set-up ``key``: fails if any sampled episode was truncated, else ``body(data)``."""

    def fn(ctx: VerifyContext) -> Outcome:
        d = suite.data(key)
        if d.truncated:
            return Outcome(False, f"{d.truncated} truncated episode(s): raise max_steps", {"truncated": d.truncated})
        return body(d)

    return fn


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _power_data(m: MinDetectableBias) -> dict:
    return {"along_gradient": m.along_gradient, "worst_direction": m.worst_direction,
            "power": m.power, "alpha": m.alpha, "n": m.n}


def _unbiased(d: _Data, label: str) -> Outcome:
    t = unbiasedness_test(d.samples[label], d.exact, alpha=ALPHA)
    mdb = min_detectable_bias(d.samples[label], d.exact, alpha=ALPHA, power=POWER)
    predicted = _rel(d.expected[label], d.exact)
    data = {**_test_data(t), "predicted_relative_bias": predicted, "truncated": 0,
            "min_detectable_bias": _power_data(mdb)}
    if predicted > 1e-9:  # theory must agree that this configuration is unbiased
        return Outcome(False, f"theory predicts bias {predicted:.2%}", data)
    return Outcome(t.passed, f"{t.summary()}; {mdb.summary()}", data)


def _detected(d: _Data, label: str) -> Outcome:
    x = d.samples[label]
    t = unbiasedness_test(x, d.exact, alpha=ALPHA)
    bias = d.expected[label] - d.exact
    power = hotelling_power(x, bias, alpha=ALPHA)
    predicted = float(bias.norm() / d.exact.norm())
    stat = (f"p = {t.p_value:.2g} {'<' if not t.passed else '≥'} α; bias {t.relative_bias:.1%} "
            f"(predicted {predicted:.1%}), power {power:.6f}")
    return Outcome(not t.passed, stat, {**_test_data(t), "predicted_relative_bias": predicted,
                                        "power": power, "truncated": 0})


def _predicted(d: _Data, label: str) -> Outcome:
    t = unbiasedness_test(d.samples[label], d.expected[label], alpha=ALPHA)
    predicted = _rel(d.expected[label], d.exact)
    return Outcome(t.passed, f"{t.summary()}; E[ĝ] is ∇J {predicted:+.1%}",
                   {**_test_data(t), "predicted_relative_bias_vs_exact": predicted})


def _verify_unbiased(suite: _Suite, key: str, label: str) -> Callable[[VerifyContext], Outcome]:
    return _row(suite, key, lambda d: _unbiased(d, label))


def _verify_detected(suite: _Suite, key: str, label: str) -> Callable[[VerifyContext], Outcome]:
    return _row(suite, key, lambda d: _detected(d, label))


def _verify_predicted(suite: _Suite, key: str, label: str) -> Callable[[VerifyContext], Outcome]:
    return _row(suite, key, lambda d: _predicted(d, label))


def _verify_variance(suite: _Suite, key: str, label: str) -> Callable[[VerifyContext], Outcome]:
    def fn(ctx: VerifyContext) -> Outcome:
        d = suite.data(key)
        table = variance_reduction({"reinforce": d.samples["reinforce"], label: d.samples[label]}, d.exact)
        r, ref = table[label], table["reinforce"]
        stat = (f"tr Σ = {r['trace']:.3g} vs {ref['trace']:.3g} ({r['reduction']:.2f}× lower), "
                f"z = {r['z']:.1f}, p = {r['p_value']:.2g}")
        return Outcome(r["p_value"] < ALPHA, stat, {**r, "reinforce_trace": ref["trace"]})

    return fn


def _calibration_sizes(ctx: VerifyContext) -> tuple[int, int]:
    return (40, 2000) if ctx.quick else (100, 2000)


def verify_false_alarm_rate(ctx: VerifyContext) -> Outcome:
    """KS test that p-values of R independent REINFORCE sample sets are Uniform(0, 1)."""
    R, n = _calibration_sizes(ctx)
    mdp, logits = _random_parts()
    mdp, logits = mdp.to(device=ctx.device), logits.to(ctx.device)
    samples, ep = samples_for_all(mdp, logits, {"r": {"estimator": "reinforce"}}, R * n,
                                  generator=ctx.generator(500))
    exact = mdp.exact_policy_gradient(logits)
    x = samples["r"].reshape(R, n, *exact.shape)
    p = torch.tensor([unbiasedness_test(x[i], exact, alpha=ALPHA).p_value for i in range(R)], dtype=F64)
    ks = _sps.kstest(p.numpy(), "uniform")
    rate05, rate01 = float((p < 0.05).to(F64).mean()), float((p < 0.01).to(F64).mean())
    stat = (f"KS D = {ks.statistic:.3f}, p = {ks.pvalue:.2g}; rejections at 0.05: {rate05:.1%}, "
            f"at 0.01: {rate01:.1%} ({R} sets × {n} episodes)")
    return Outcome(bool(ks.pvalue >= ALPHA and int(ep.truncated.sum()) == 0), stat,
                   {"ks_statistic": float(ks.statistic), "ks_p_value": float(ks.pvalue),
                    "rate_0.05": rate05, "rate_0.01": rate01, "sets": R, "episodes_per_set": n})


def verify_gae_bias_endpoints(ctx: VerifyContext) -> Outcome:
    """b(1) = 0 and b(0) = Σₛ d(s) π(a|s) (f − Σ_b π f)(s, a) with f = γ P e (closed form)."""
    mdp, logits = _random_parts()
    pi = mdp.policy(logits)
    Vp = perturbed_values(mdp, mdp.state_values(pi))
    g = mdp.exact_policy_gradient(logits)
    b1 = gae_value_error_bias(mdp, logits, Vp, 1.0)
    b0 = gae_value_error_bias(mdp, logits, Vp, 0.0)
    e = (Vp - mdp.state_values(pi)) * (~mdp.terminal).to(F64)
    f = mdp.gamma * torch.einsum("sat,t->sa", mdp.P, e)
    d = mdp.discounted_occupancy(pi)
    closed = d[:, None] * pi * (f - (pi * f).sum(-1, keepdim=True))
    err1 = float(b1.norm() / g.norm())
    err0 = float((b0 - closed).norm() / g.norm())
    return Outcome(err1 < 1e-10 and err0 < 1e-10, f"‖b(1)‖ = {err1:.1e}, ‖b(0) − closed form‖ = {err0:.1e} (rel.)",
                   {"b1_rel": err1, "b0_err_rel": err0, "b0_rel": float(b0.norm() / g.norm())})


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """The rows of the estimator suite (see the module docstring)."""
    suite = _suite(ctx)
    rows: list[VerifyRow] = []
    for s in suite.setups.values():  # over set-ups, in table order
        for label in s.estimators:  # over its estimator configurations
            kind = _row_kind(s, label)
            if kind == "detected":
                rows.append(VerifyRow(AREA, label, f"detected as biased: T² vs ∇J, {s.title}",
                                  _verify_detected(suite, s.key, label)))
                rows.append(VerifyRow(AREA, label, f"mean = predicted biased E[ĝ]: T², {s.title}",
                                  _verify_predicted(suite, s.key, label)))
            elif kind == "predicted":
                rows.append(VerifyRow(AREA, label, f"mean = predicted E[ĝ] (GAE λ = 0 bias): T², {s.title}",
                                  _verify_predicted(suite, s.key, label)))
            else:
                rows.append(VerifyRow(AREA, label, f"unbiased: Hotelling T² vs exact ∇J, {s.title}",
                                  _verify_unbiased(suite, s.key, label)))
    for label in ("reward_to_go", "baseline", "actor_critic", "td", "gae"):  # over variance claims
        rows.append(VerifyRow(AREA, label, "variance: lower MSE than REINFORCE (paired z, random MDP)",
                          _verify_variance(suite, "random", label)))
    rows.append(VerifyRow(AREA, "unbiasedness_test", "false-alarm rate: p-values uniform under H₀ (KS)",
                      verify_false_alarm_rate))
    rows.append(VerifyRow(AREA, "GAE(λ) bias, V + e", "exact curve: b(1) = 0, b(0) closed form",
                      verify_gae_bias_endpoints))
    return rows


# ---------------------------------------------------------------------------- artifacts
_CURVE_ESTIMATORS = ("reinforce", "reward_to_go", "baseline", "actor_critic", "gae",
                     "gae_no_discount_weight", "gae_wrong_recursion", "gae_perturbed_values")


def _sizes(N: int) -> list[int]:
    out, n = [], 1
    while n <= N // 4:  # doubling batch sizes, at least 4 batches each
        out.append(n)
        n *= 2
    return out


def curves(ctx: VerifyContext) -> dict:
    """All curve data (JSON-able): error/variance and cosine vs episodes, GAE bias vs λ."""
    suite = _suite(ctx)
    d = suite.data("random")
    ns = _sizes(d.n)
    err = {k: error_curve(d.samples[k], d.exact, ns, expected=d.expected[k]) for k in _CURVE_ESTIMATORS}
    cos = {k: cosine_curve(d.samples[k], d.exact, ns) for k in _CURVE_ESTIMATORS}
    var = variance_reduction({k: d.samples[k] for k in _UNBIASED}, d.exact)
    lams = [i / 20 for i in range(21)]
    Vp = d.extra["values_perturbed"]
    gae_curve = gae_bias_curve(d.mdp, d.params, Vp, lams)
    # sampled points on the curve: GAE(λ) with V + e on fresh episodes
    pts = {"lam": [], "rel_bias": [], "ci_low": [], "ci_high": [], "p_value_vs_curve": []}
    lam_pts = [0.0, 0.25, 0.5, 0.75, 1.0]
    cfgs = {str(lam): {"estimator": "gae", "lam": lam, "values": Vp} for lam in lam_pts}
    n_pts = max(3, d.n // 2)
    sampled, _ = samples_for_all(d.mdp, d.params, cfgs, n_pts, generator=ctx.generator(600))
    for lam in lam_pts:  # over the sampled λ
        x = sampled[str(lam)]
        t = unbiasedness_test(x, d.exact, alpha=ALPHA)
        t_curve = unbiasedness_test(x, d.exact + gae_value_error_bias(d.mdp, d.params, Vp, lam), alpha=ALPHA)
        pts["lam"].append(lam)
        pts["rel_bias"].append(t.relative_bias)
        pts["ci_low"].append(t.relative_bias_ci[0])
        pts["ci_high"].append(t.relative_bias_ci[1])
        pts["p_value_vs_curve"].append(t_curve.p_value)
    return {
        "mdp": "random MDP (5 states, 1 terminal, 3 actions, gamma = 0.9, seed 2)",
        "episodes": d.n,
        "exact_gradient_norm": float(d.exact.norm()),
        "error_curves": err,
        "cosine_curves": cos,
        "variance": var,
        "gae_bias_curve": {**gae_curve, "critic_error": "V + 0.5 (-1)^s (1 + |V(s)|)",
                           "sampled": {**pts, "episodes": n_pts}},
    }


def _save(plt, fig, path: pathlib.Path) -> pathlib.Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_artifacts(ctx: VerifyContext, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Write ``estimators_curves.json`` and three PNG plots into ``out_dir``; return their paths."""
    require("matplotlib", extra="plots", feature="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = curves(ctx)
    paths = []
    p_json = out_dir / "estimators_curves.json"
    p_json.write_text(json.dumps(c, indent=1))
    paths.append(p_json)

    # bias and variance against samples
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (k, e) in enumerate(c["error_curves"].items()):  # over estimators
        col = f"C{i}"
        ax1.loglog(e["n"], e["rms_rel_error"], "o", color=col, ms=3)
        ax1.loglog(e["n"], e["predicted_rel_error"], "-", color=col, lw=1, label=k)
        if e["rel_bias"][0] > 1e-9:
            ax1.axhline(e["rel_bias"][0], color=col, ls=":", lw=0.8)
        ax2.loglog(e["n"], [s**2 for s in e["rel_std"]], "-", color=col, label=k)
    ax1.set(xlabel="episodes n", ylabel="RMS ‖ḡₙ − ∇J‖ / ‖∇J‖",
            title="error (dots: observed, lines: √(bias² + tr Σ/n), dotted: bias)")
    ax2.set(xlabel="episodes n", ylabel="tr Σ / (n ‖∇J‖²)", title="relative variance of the n-episode mean")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.suptitle(f"{c['mdp']}, {c['episodes']} episodes", fontsize=9)
    paths.append(_save(plt, fig, out_dir / "estimators_bias_variance.png"))

    # cosine similarity against samples
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (k, e) in enumerate(c["cosine_curves"].items()):  # over estimators
        ax.semilogx(e["n"], e["mean"], "-", color=f"C{i}", label=k)
        ax.fill_between(e["n"], e["q10"], e["q90"], color=f"C{i}", alpha=0.12)
    ax.set(xlabel="episodes n", ylabel="cos(ḡₙ, ∇J)", ylim=(-0.2, 1.02),
           title="cosine similarity to the exact gradient (band: 10–90%)")
    ax.legend(fontsize=7)
    paths.append(_save(plt, fig, out_dir / "estimators_cosine.png"))

    # GAE bias against lambda
    gb = c["gae_bias_curve"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(gb["lam"], gb["rel_bias"], "-", label="exact ‖b(λ)‖ / ‖∇J‖")
    s = gb["sampled"]
    lo = [m - a for m, a in zip(s["rel_bias"], s["ci_low"])]
    hi = [b - m for m, b in zip(s["rel_bias"], s["ci_high"])]
    ax.errorbar(s["lam"], s["rel_bias"], yerr=[lo, hi], fmt="o", ms=4, capsize=3,
                label=f"sampled, 95% CI ({s['episodes']} episodes)")
    ax.set(xlabel="λ", ylabel="relative bias", title="GAE(λ) bias with an imperfect critic V + e")
    ax.legend(fontsize=8)
    paths.append(_save(plt, fig, out_dir / "estimators_gae_bias.png"))
    return paths
