"""Monte-Carlo policy-gradient estimators on tabular MDPs: one gradient sample per episode.

Target (the discounted objective from μ₀, :meth:`pgmath.mdp.TabularMDP.exact_policy_gradient`)::

    J(θ) = E[Σₜ γᵗ rₜ],      ∇J = E[Σₜ γᵗ ∇θ log πθ(aₜ|sₜ) Q(sₜ, aₜ)]        (Sutton et al., 1999)

Every estimator here is, for one episode n, ĝₙ = Σₜ wₜ ∇θ log πθ(aₜ|sₜ) with a weight wₜ
(held constant, like the advantages of :func:`pgmath.policy_gradient_loss`)::

    "reinforce"                  wₜ = G₀ = Σₖ γᵏ rₖ             (Williams, 1992: whole return)
    "reward_to_go"               wₜ = γᵗ Gₜ,  Gₜ = Σₖ γᵏ rₜ₊ₖ    (causality)
    "baseline"                   wₜ = γᵗ (Gₜ − V(sₜ))            (state baseline; exact V)
    "actor_critic"               wₜ = γᵗ A(sₜ, aₜ)  (or Q)       (exact critic)
    "td"                         wₜ = γᵗ δₜ,  δₜ = rₜ + γ V(sₜ₊₁) − V(sₜ)
    "gae"                        wₜ = γᵗ Âₜ,  Âₜ = δₜ + γλ Âₜ₊₁  (Schulman et al., 2015; λ = 0.95)
    "gae_no_discount_weight"     wₜ = Âₜ                          (drops γᵗ: Nota & Thomas, 2020)

All of them are unbiased for ∇J except "gae_no_discount_weight", which is unbiased only at γ = 1:
without the γᵗ its mean is Σₛ d₁(s) Σₐ ∇π(a|s) A(s, a) with the *undiscounted* occupancy
d₁(s) = Σₜ Pr(sₜ = s) in place of d(s) = Σₜ γᵗ Pr(sₜ = s), which is not the gradient of any
objective in general (Nota & Thomas, "Is the Policy Gradient a Gradient?", AAMAS 2020).

Deliberately biased estimators (the power of the test is shown on them, never claimed)::

    "action_dependent_baseline"  wₜ = γᵗ (Gₜ − R(sₜ, aₜ))        b depends on the action
    "off_by_one_return"          wₜ = γᵗ Gₜ₊₁                     the return from the next step
    "gae_wrong_recursion"        Âₜ = λ δₜ + γλ Âₜ₊₁  (λ on δₜ itself; mean λ ∇J; λ = 0.9)
    "gae_perturbed_values"       GAE(λ = 0.5) with V̂ = V + e, e ≠ 0 (unbiased only at λ = 1)

Their exact expectations are in :mod:`pgmath.estimators.expected`, so the suite checks both
that each one is *detected* as biased and that its sample mean matches the predicted bias.

Returns, TD errors and GAE come from the core (:func:`pgmath.discounted_returns`,
:func:`pgmath.td_errors`, :func:`pgmath.gae`) and log π from :func:`pgmath.categorical_log_prob`.
No recursion is written here: the two biased rules that are a known bug of a core formula call
that bug's wrong variant from the spec catalogue (:data:`pgmath.specs.SPECS`), the one catalogue
of known bugs — "gae_wrong_recursion" is ``SPECS["gae"].variant("gae_lambda_on_delta")`` and
"off_by_one_return" is ``SPECS["discounted_returns"].variant("returns_off_by_one")``, both called
in the core time-major signature on the episodes of an :class:`EpisodeBatch`. Per-episode
gradients are ``torch.func.vmap(torch.func.grad(f))`` over the episode axis, where
f(θ) = Σₜ wₜ log πθ(aₜ|sₜ) for one episode: no Python loop over episodes.

Episode length. Episodes are drawn by :func:`pgmath.mdp.sample_episodes` with a step cap
``max_steps``; by default the smallest H with Pr(episode still running after H steps) ≤ 10⁻¹²
(computed exactly from P_π, :func:`survival_probability`). A batch of N episodes then contains a
truncated episode with probability ≤ N · 10⁻¹² (< 10⁻⁵ for N ≤ 10⁷), so the samples are exact
draws of the untruncated estimator except on that event; the suite also asserts that no
sampled episode was truncated. MDPs whose policy cannot terminate need γ < 1 and get the cap of
:func:`pgmath.mdp.steps_for_tolerance` (return truncation below 10⁻¹² · max|R|).

Checked by: tests/test_estimators_policy_gradient.py (per-episode vmap gradients == a per-episode
autograd loop through :func:`pgmath.policy_gradient_loss` == the closed-form softmax score;
weights on hand-made episodes; options and input validation) and
tests/test_estimators_verify.py (every unbiased estimator passes
:func:`pgmath.stats.unbiasedness_test` against the exact gradient; every biased one is detected
and matches its predicted mean).
Docs: docs/estimators/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.func import grad, vmap

from pgmath import categorical_log_prob, discounted_returns, gae, td_errors
from pgmath.mdp import Episodes, TabularMDP, sample_episodes, steps_for_tolerance
from pgmath.specs import SPECS
from pgmath.validation import validate_float_tensor, validate_unit_interval

__all__ = [
    "BIASED_ESTIMATORS",
    "ESTIMATORS",
    "UNBIASED_ESTIMATORS",
    "EpisodeBatch",
    "Estimator",
    "default_max_steps",
    "episode_weights",
    "estimate_policy_gradient",
    "is_unbiased",
    "per_episode_gradients",
    "perturbed_values",
    "resolve_options",
    "samples_for_all",
    "survival_probability",
]

#: Pr(an episode outlives the default step cap) — see the module docstring.
SURVIVAL_TOL = 1e-12


# ---------------------------------------------------------------------------- context
@dataclass(frozen=True)
class EpisodeBatch:
    """Sampled episodes plus the exact tables of their MDP: everything a weight rule needs.

    Time-major ``[T, N]`` (the layout of :class:`pgmath.mdp.Episodes`, whose padding after a
    termination makes the core recursions give 0 there).
    """

    ep: Episodes
    gamma: float
    V: torch.Tensor  # [S] exact V^π
    Q: torch.Tensor  # [S, A] exact Q^π
    R: torch.Tensor  # [S, A] expected rewards
    terminal: torch.Tensor  # [S] bool
    disc: torch.Tensor = field(init=False)  # [T, 1] γᵗ
    valid: torch.Tensor = field(init=False)  # [T, N] float 1/0

    def __post_init__(self) -> None:
        T = self.ep.num_steps
        dt, dev = self.ep.rewards.dtype, self.ep.rewards.device
        object.__setattr__(self, "disc", (self.gamma ** torch.arange(T, dtype=dt, device=dev))[:, None])
        object.__setattr__(self, "valid", self.ep.valid.to(dt))

    def returns(self) -> torch.Tensor:
        """Gₜ (Monte Carlo, no bootstrap), 0 on padding — :func:`pgmath.discounted_returns`."""
        e = self.ep
        return discounted_returns(e.rewards, e.terminated, e.truncated, gamma=self.gamma)

    def critic(self, values: torch.Tensor | None) -> torch.Tensor:
        """The state values used by a TD/GAE rule: ``values`` if given, else the exact V."""
        return self.V if values is None else values

    def deltas(self, values: torch.Tensor) -> torch.Tensor:
        """δₜ = rₜ + γ (1 − termₜ) V̂(sₜ₊₁) − V̂(sₜ) — :func:`pgmath.td_errors`."""
        e = self.ep
        return td_errors(e.rewards, values[e.states], values[e.next_states], e.terminated, gamma=self.gamma)

    def gae(self, values: torch.Tensor, lam: float) -> torch.Tensor:
        """Âₜ = δₜ + γλ Âₜ₊₁ (reset at episode ends) — :func:`pgmath.gae`."""
        e = self.ep
        return gae(
            e.rewards, values[e.states], values[e.next_states], e.terminated, e.truncated,
            gamma=self.gamma, lam=lam,
        )


# ---------------------------------------------------------------------------- weight rules
def _w_reinforce(r: EpisodeBatch, o: dict) -> torch.Tensor:
    return r.returns()[0:1] * r.valid


def _w_reward_to_go(r: EpisodeBatch, o: dict) -> torch.Tensor:
    return r.disc * r.returns() * r.valid


def _w_baseline(r: EpisodeBatch, o: dict) -> torch.Tensor:
    b = r.critic(o.get("values"))
    return r.disc * (r.returns() - b[r.ep.states]) * r.valid


def _w_actor_critic(r: EpisodeBatch, o: dict) -> torch.Tensor:
    critic = o.get("critic", "advantage")
    if critic not in ("advantage", "q"):
        raise ValueError(f"critic must be 'advantage' or 'q', got {critic!r}")
    table = r.Q - r.V[:, None] if critic == "advantage" else r.Q
    return r.disc * table[r.ep.states, r.ep.actions] * r.valid


def _w_td(r: EpisodeBatch, o: dict) -> torch.Tensor:
    return r.disc * r.deltas(r.critic(o.get("values"))) * r.valid


def _lam(o: dict, default: float) -> float:
    return validate_unit_interval(o.get("lam", default), "lam")


def _w_gae(r: EpisodeBatch, o: dict) -> torch.Tensor:
    return r.disc * r.gae(r.critic(o.get("values")), _lam(o, 0.95)) * r.valid


def _w_gae_no_discount_weight(r: EpisodeBatch, o: dict) -> torch.Tensor:
    return r.gae(r.critic(o.get("values")), _lam(o, 0.95)) * r.valid


def _w_action_dependent_baseline(r: EpisodeBatch, o: dict) -> torch.Tensor:
    b = r.R[r.ep.states, r.ep.actions]
    return r.disc * (r.returns() - b) * r.valid


#: The catalogued bug "returns one step late" (Gₜ₊₁ used for Gₜ), core returns signature.
RETURNS_OFF_BY_ONE = SPECS["discounted_returns"].variant("returns_off_by_one")
#: The catalogued bug "λ applied to δₜ as well" (Âₜ = λδₜ + γλÂₜ₊₁), core GAE signature.
GAE_LAMBDA_ON_DELTA = SPECS["gae"].variant("gae_lambda_on_delta")


def _append_step(x: torch.Tensor) -> torch.Tensor:
    """``x`` with one all-zero (all-False) step appended after the last one: ``[T + 1, N]``."""
    return torch.cat([x, torch.zeros_like(x[:1])])


def _w_off_by_one_return(r: EpisodeBatch, o: dict) -> torch.Tensor:
    # The catalogued variant reads Gₜ₊₁ and repeats G_{T−1} at the last step; run on the episodes
    # with an empty step appended (zero reward, so G_T = 0) and drop that step, it gives Gₜ₊₁
    # everywhere, 0 after an episode's last step (padding, or the empty step after the cap).
    e = r.ep
    G_next = RETURNS_OFF_BY_ONE.fn(
        _append_step(e.rewards), _append_step(e.terminated), _append_step(e.truncated), gamma=r.gamma,
    )[:-1]
    return r.disc * G_next * r.valid


def _w_gae_wrong_recursion(r: EpisodeBatch, o: dict) -> torch.Tensor:
    # solution: λ × true GAE, so the mean is λ ∇J with the exact V (a bias of −(1 − λ) ∇J)
    e, values = r.ep, r.critic(o.get("values"))
    adv = GAE_LAMBDA_ON_DELTA.fn(
        e.rewards, values[e.states], values[e.next_states], e.terminated, e.truncated,
        gamma=r.gamma, lam=_lam(o, 0.9),
    )
    return r.disc * adv * r.valid


def perturbed_values(mdp: TabularMDP, V: torch.Tensor, *, scale: float = 0.5) -> torch.Tensor:
    """A deliberately imperfect critic V̂(s) = V(s) + e(s), e(s) = scale · (−1)ˢ · (1 + |V(s)|).

    The error alternates in sign along the state index and is 0 on terminal states (whose value
    GAE never reads: a terminated step does not bootstrap). Deterministic, so the suite's
    "perturbed V" rows are reproducible.
    """
    s = torch.arange(mdp.num_states, device=V.device)
    sign = 1.0 - 2.0 * (s % 2).to(V.dtype)
    e = scale * sign * (1.0 + V.abs())
    return torch.where(mdp.terminal.to(V.device), V, V + e)


def _w_gae_perturbed_values(r: EpisodeBatch, o: dict) -> torch.Tensor:
    values = o.get("values")
    if values is None:
        raise ValueError("values must be given for 'gae_perturbed_values' (filled in by the caller)")
    return r.disc * r.gae(values, _lam(o, 0.5)) * r.valid


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Estimator:
    """A registered estimator.

    Attributes:
      name: registry key.
      formula: ĝ for one episode, in Unicode math.
      unbiased: when it is unbiased for ∇J: "always", "gamma == 1", "lam == 1" or "never".
      options: the keyword options it accepts (besides ``max_steps`` and ``policy_fn``).
      doc: the docs page that derives it.
      weights: the rule ``(rollout, options) -> w [T, N]``.
    """

    name: str
    formula: str
    unbiased: str
    options: tuple[str, ...]
    doc: str
    weights: Callable[[EpisodeBatch, dict], torch.Tensor]


def _spec(name, formula, unbiased, options, doc, fn) -> tuple[str, Estimator]:
    return name, Estimator(name, formula, unbiased, tuple(options), f"docs/estimators/{doc}.md", fn)


#: Every estimator, by name.
ESTIMATORS: dict[str, Estimator] = dict(
    [
        _spec("reinforce", "Σₜ ∇log π(aₜ|sₜ) G₀", "always", (), "reinforce", _w_reinforce),
        _spec("reward_to_go", "Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ", "always", (), "reward_to_go", _w_reward_to_go),
        _spec("baseline", "Σₜ γᵗ ∇log π(aₜ|sₜ) (Gₜ − V(sₜ))", "always", ("values",), "baseline", _w_baseline),
        _spec("actor_critic", "Σₜ γᵗ ∇log π(aₜ|sₜ) A(sₜ, aₜ)", "always", ("critic",), "actor_critic",
              _w_actor_critic),
        _spec("td", "Σₜ γᵗ ∇log π(aₜ|sₜ) δₜ", "always", ("values",), "td", _w_td),
        _spec("gae", "Σₜ γᵗ ∇log π(aₜ|sₜ) Âₜ^GAE(γ,λ)", "always", ("lam", "values"), "gae", _w_gae),
        _spec("gae_no_discount_weight", "Σₜ ∇log π(aₜ|sₜ) Âₜ^GAE(γ,λ)", "gamma == 1", ("lam", "values"),
              "gae_no_discount_weight", _w_gae_no_discount_weight),
        _spec("action_dependent_baseline", "Σₜ γᵗ ∇log π(aₜ|sₜ) (Gₜ − R(sₜ, aₜ))", "never", (),
              "action_dependent_baseline", _w_action_dependent_baseline),
        _spec("off_by_one_return", "Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ₊₁", "never", (), "off_by_one_return",
              _w_off_by_one_return),
        _spec("gae_wrong_recursion", "Σₜ γᵗ ∇log π(aₜ|sₜ) Ãₜ,  Ãₜ = λδₜ + γλÃₜ₊₁", "never",
              ("lam", "values"), "gae_wrong_recursion", _w_gae_wrong_recursion),
        _spec("gae_perturbed_values", "Σₜ γᵗ ∇log π(aₜ|sₜ) Âₜ^GAE(γ,λ; V + e)", "lam == 1",
              ("lam", "values"), "gae_bias", _w_gae_perturbed_values),
    ]
)

#: Unbiased for ∇J whatever γ (with exact V where one is used).
UNBIASED_ESTIMATORS: tuple[str, ...] = tuple(k for k, v in ESTIMATORS.items() if v.unbiased == "always")
#: The deliberately biased ones (under γ < 1 for "gae_no_discount_weight", λ < 1 for the perturbed V).
BIASED_ESTIMATORS: tuple[str, ...] = (
    "gae_no_discount_weight",
    "action_dependent_baseline",
    "off_by_one_return",
    "gae_wrong_recursion",
    "gae_perturbed_values",
)


def lookup_estimator(estimator: object) -> Estimator:
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    return ESTIMATORS[estimator]


def is_unbiased(estimator: str, *, gamma: float, lam: float | None = None, values_exact: bool = True) -> bool:
    """Whether theory says ``estimator`` is unbiased for ∇J at this γ (and λ, critic).

    A TD/GAE critic other than the exact V makes "td", "gae" and "gae_no_discount_weight"
    biased unless λ = 1 (see :func:`pgmath.estimators.expected.gae_value_error_bias`);
    "baseline" stays unbiased with any state baseline.
    """
    spec = lookup_estimator(estimator)
    gamma = validate_unit_interval(gamma, "gamma")
    if spec.unbiased == "never":
        return False
    if spec.unbiased == "lam == 1":
        return lam == 1.0
    ok = spec.unbiased == "always" or gamma == 1.0
    if not values_exact and estimator in ("td", "gae", "gae_no_discount_weight"):
        lam_eff = 0.0 if estimator == "td" else (0.95 if lam is None else lam)
        ok = ok and lam_eff == 1.0
    return ok


# ---------------------------------------------------------------------------- episode length
def survival_probability(mdp: TabularMDP, pi: torch.Tensor, steps: int) -> float:
    """Pr(an episode has not terminated after ``steps`` steps) = μ₀ P_nnᵏ 1, exactly.

    P_nn is P_π restricted to the non-terminal states (the sub-stochastic transient part).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    P_pi = mdp.transition_matrix(pi).detach()
    live = ~mdp.terminal
    M = P_pi[live][:, live]
    mu = mdp.mu0[live]
    return float(mu @ torch.linalg.matrix_power(M, steps) @ torch.ones_like(mu))


def default_max_steps(mdp: TabularMDP, pi: torch.Tensor, *, tol: float = SURVIVAL_TOL, limit: int = 100_000) -> int:
    """Step cap H: smallest H with Pr(episode longer than H) ≤ ``tol`` (terminating policies),
    else (γ < 1) :func:`pgmath.mdp.steps_for_tolerance` at ``tol · max|R|``.

    Raises ValueError when neither bound applies within ``limit`` steps (γ = 1 and the policy
    does not terminate).
    """
    P_pi = mdp.transition_matrix(pi).detach()
    live = ~mdp.terminal
    if bool(mdp.terminal.any()):
        M = P_pi[live][:, live]
        mu = mdp.mu0[live]
        # forward in time, squaring: find a power of two past the cap, then bisect
        hi, p = 1, mu @ M
        while float(p.sum()) > tol and hi < limit:
            hi *= 2
            p = mu @ torch.linalg.matrix_power(M, hi)
        if float(p.sum()) <= tol:
            lo = hi // 2
            # bisection on the (non-increasing) survival curve
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if float((mu @ torch.linalg.matrix_power(M, mid)).sum()) <= tol:
                    hi = mid
                else:
                    lo = mid
            return hi
    if mdp.gamma < 1.0:
        rmax = float(mdp.R.abs().max())
        return steps_for_tolerance(mdp, tol * max(rmax, 1e-300))
    raise ValueError(
        "max_steps: gamma = 1 and the policy does not terminate within "
        f"{limit} steps with probability >= 1 - {tol}; pass max_steps or use gamma < 1"
    )


# ---------------------------------------------------------------------------- per-episode gradients
def _log_pi_table(params: torch.Tensor, policy_fn: Callable[[torch.Tensor], torch.Tensor] | None,
                  S: int, A: int) -> torch.Tensor:
    """log πθ(a|s) for every (s, a), ``[S, A]``, through :func:`pgmath.categorical_log_prob`."""
    z = params if policy_fn is None else torch.log(policy_fn(params))  # log π are valid logits
    every = torch.arange(A, device=z.device).expand(S, A)
    return categorical_log_prob(z[:, None, :].expand(S, A, A), every)


def per_episode_gradients(
    params: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
    *,
    num_states: int,
    num_actions: int,
    policy_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_size: int | None = 65536,
) -> torch.Tensor:
    """ĝₙ = ∇θ Σₜ wₜₙ log πθ(aₜₙ|sₜₙ) for every episode n, by ``vmap(grad(·))`` over n.

    Args:
      params: θ — ``[S, A]`` tabular softmax logits, or the argument of ``policy_fn``.
      states, actions: ``[T, N]`` integer sₜ, aₜ (padding allowed: its weight is 0).
      weights: ``[T, N]`` wₜ (constants), 0 on padding.
      num_states, num_actions: S, A.
      policy_fn: optional ``params -> π [S, A]`` (e.g. :class:`pgmath.mdp.LinearSoftmaxPolicy`).
      chunk_size: episodes per vectorized chunk (bounds memory), None for all at once.
    Returns:
      ``[N, *params.shape]``, in ``params``' dtype.
    """
    validate_float_tensor(params, "params")
    validate_float_tensor(weights, "weights")
    if states.shape != actions.shape or states.shape != weights.shape or states.dim() != 2:
        raise ValueError(
            f"states, actions and weights must all be [T, N]; got {tuple(states.shape)}, "
            f"{tuple(actions.shape)}, {tuple(weights.shape)}"
        )
    S, A = num_states, num_actions
    w = weights.detach().to(params.dtype)

    def episode_objective(theta: torch.Tensor, s: torch.Tensor, a: torch.Tensor, wn: torch.Tensor) -> torch.Tensor:
        return (_log_pi_table(theta, policy_fn, S, A)[s, a] * wn).sum()

    per_episode = vmap(grad(episode_objective), in_dims=(None, 1, 1, 1), chunk_size=chunk_size)
    return per_episode(params.detach(), states, actions, w)


# ---------------------------------------------------------------------------- public entry point
def _validate_options(spec: Estimator, options: dict) -> None:
    for k in options:  # over the given option names
        if k not in spec.options:
            allowed = ", ".join(spec.options) or "none"
            raise ValueError(f"unknown option {k!r} for estimator {spec.name!r} (allowed: {allowed})")


def policy_table(mdp: TabularMDP, params: torch.Tensor, policy_fn) -> torch.Tensor:
    if policy_fn is None:
        return mdp.policy(params)
    if not callable(policy_fn):
        raise ValueError(f"policy_fn must be callable params -> pi [S, A], got {type(policy_fn).__name__}")
    return mdp.validate_policy(policy_fn(params), "policy_fn(params)")


def _critic_option(mdp: TabularMDP, values: object) -> torch.Tensor:
    validate_float_tensor(values, "values")
    assert isinstance(values, torch.Tensor)
    if tuple(values.shape) != (mdp.num_states,):
        raise ValueError(f"values must have shape [S] = ({mdp.num_states},), got {tuple(values.shape)}")
    return values.to(device=mdp.device, dtype=mdp.dtype)


def resolve_options(mdp: TabularMDP, pi: torch.Tensor, estimator: str, options: dict) -> dict:
    """Validate ``options`` for ``estimator``; fill the default perturbed critic where needed."""
    spec = lookup_estimator(estimator)
    _validate_options(spec, options)
    out = dict(options)
    if "values" in out:
        out["values"] = _critic_option(mdp, out["values"])
    elif estimator == "gae_perturbed_values":
        out["values"] = perturbed_values(mdp, mdp.state_values(pi).detach())
    if "lam" in out:
        out["lam"] = validate_unit_interval(out["lam"], "lam")
    return out


def episode_weights(
    mdp: TabularMDP, pi: torch.Tensor, episodes: Episodes, estimator: str, **options: object
) -> torch.Tensor:
    """The weights wₜ ``[T, N]`` of ``estimator`` on sampled ``episodes`` (0 on padding).

    Args:
      mdp: the MDP the episodes come from (its exact V, Q serve as critics).
      pi: ``[S, A]`` the behaviour (= target) policy.
      episodes: from :func:`pgmath.mdp.sample_episodes`.
      estimator: a key of :data:`ESTIMATORS`; options as listed there.
    """
    spec = lookup_estimator(estimator)
    pi = mdp.validate_policy(pi).detach()
    opts = resolve_options(mdp, pi, estimator, options)
    V = mdp.state_values(pi)
    Q = mdp.action_values(pi)
    roll = EpisodeBatch(episodes, mdp.gamma, V, Q, mdp.R, mdp.terminal)
    return spec.weights(roll, opts)


def estimate_policy_gradient(
    mdp: TabularMDP,
    logits: torch.Tensor,
    estimator: str,
    num_episodes: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    max_steps: int | None = None,
    policy_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **options: object,
) -> torch.Tensor:
    """Per-episode policy-gradient samples ``[N, S, A]`` (``[N, *params.shape]`` with ``policy_fn``).

    Samples N episodes from μ₀ under πθ and returns one estimate ĝₙ = Σₜ wₜ ∇θ log πθ(aₜ|sₜ)
    per episode (rules in the module docstring). The mean over n estimates E[ĝ]; each row is
    an independent draw, which is what :func:`pgmath.stats.unbiasedness_test` needs.

    Args:
      mdp: a :class:`pgmath.mdp.TabularMDP`.
      logits: ``[S, A]`` tabular softmax logits θ — or, with ``policy_fn``, its parameters.
      estimator: a key of :data:`ESTIMATORS`.
      num_episodes: N >= 1.
      generator: ``torch.Generator`` on ``device`` (the only randomness).
      device: where to sample and differentiate (default: the generator's device).
      max_steps: step cap; default :func:`default_max_steps` (Pr(truncation) ≤ 10⁻¹²).
      policy_fn: optional ``params -> π [S, A]`` for a general parameter vector.
      **options: ``lam`` (GAE λ), ``values`` (``[S]`` critic replacing the exact V in
        "baseline", "td", the GAE rules), ``critic`` ("advantage" or "q", "actor_critic").

    Returns:
      ``[N, *logits.shape]`` in the MDP's dtype.

    Raises:
      ValueError naming the argument: unknown estimator or option, bad N, a generator on
      another device, γ = 1 with a policy that does not terminate (and no ``max_steps``).
    """
    _validate_options(lookup_estimator(estimator), options)
    out, _ = samples_for_all(
        mdp, logits, {"x": {"estimator": estimator, **options}}, num_episodes,
        generator=generator, device=device, max_steps=max_steps, policy_fn=policy_fn,
    )
    return out["x"]


def samples_for_all(
    mdp: TabularMDP,
    logits: torch.Tensor,
    estimators: dict[str, dict],
    num_episodes: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    max_steps: int | None = None,
    policy_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], Episodes]:
    """Several estimators on the SAME N episodes (common random numbers): ``{label: [N, …]}``.

    ``estimators`` maps a label to ``{"estimator": name, **options}``. Sampling once and
    differentiating per rule makes the variance comparisons paired and the suite fast; each
    label's rows are still N independent draws of that estimator. Other arguments as
    :func:`estimate_policy_gradient`; also returns the sampled :class:`pgmath.mdp.Episodes`.
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"num_episodes must be an integer >= 1, got {num_episodes!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    dev = generator.device if device is None else torch.device(device)
    if mdp.device != dev:
        mdp = mdp.to(device=dev)
    validate_float_tensor(logits, "logits")
    params = logits.detach().to(device=dev, dtype=mdp.dtype)
    pi = policy_table(mdp, params, policy_fn).detach()
    H = default_max_steps(mdp, pi) if max_steps is None else max_steps
    episodes = sample_episodes(mdp, pi, num_episodes, H, generator=generator, device=dev)
    out = {}
    for label, cfg in estimators.items():  # over estimators (few); each is vectorized over episodes
        cfg = dict(cfg)
        name = cfg.pop("estimator")
        w = episode_weights(mdp, pi, episodes, name, **cfg)
        out[label] = per_episode_gradients(
            params, episodes.states, episodes.actions, w,
            num_states=mdp.num_states, num_actions=mdp.num_actions, policy_fn=policy_fn,
        )
    return out, episodes
