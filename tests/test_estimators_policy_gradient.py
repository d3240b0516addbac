"""Per-episode gradient estimators: weights on hand-made episodes, vmap gradients, validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgmath import gae, policy_gradient_loss
from pgmath.estimators import (
    ESTIMATORS,
    estimate_policy_gradient,
    is_unbiased,
    per_episode_gradients,
    policy_gradient,
)
from pgmath.estimators.policy_gradient import (
    default_max_steps,
    episode_weights,
    samples_for_all,
    survival_probability,
)
from pgmath.mdp import (
    Episodes,
    LinearSoftmaxPolicy,
    TabularMDP,
    random_mdp,
    sample_episodes,
    short_corridor,
    short_corridor_features,
)
from pgmath.specs import SPECS
from pgmath.stats import unbiasedness_test

F64 = torch.float64
GAMMA = 0.5


def _tiny_mdp() -> TabularMDP:
    """States 0, 1 (non-terminal), 2 (terminal); deterministic moves; R = [[1, 2], [3, 4]]."""
    P = torch.zeros(3, 2, 3, dtype=F64)
    P[0, 0, 1] = P[0, 1, 2] = P[1, 0, 0] = P[1, 1, 2] = 1.0
    P[2, :, 2] = 1.0
    R = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]], dtype=F64)
    return TabularMDP(P, R, GAMMA, [1.0, 0.0, 0.0], [False, False, True])


def _tiny_episodes() -> Episodes:
    """Episode A: (s0,a0,r1) (s1,a1,r4) end.  Episode B: (s0,a0,r1) (s1,a0,r3) (s0,a1,r2) end."""
    st = torch.tensor([[0, 0], [1, 1], [2, 0]])
    ac = torch.tensor([[0, 0], [1, 0], [0, 1]])
    rw = torch.tensor([[1.0, 1.0], [4.0, 3.0], [0.0, 2.0]], dtype=F64)
    ns = torch.tensor([[1, 1], [2, 0], [2, 2]])
    te = torch.tensor([[False, False], [True, False], [False, True]])
    va = torch.tensor([[True, True], [True, True], [False, True]])
    return Episodes(st, ac, rw, ns, te, torch.zeros_like(te), torch.zeros(3, 2, dtype=F64), va, va.sum(0))


LOGITS = torch.tensor([[0.3, -0.2], [-0.5, 0.4], [0.0, 0.0]], dtype=F64)


def _hand_weights(name: str, V: torch.Tensor, Q: torch.Tensor, lam: float = 0.95) -> list[list[float]]:
    """The weights of each rule written out by hand (per episode, plain Python)."""
    g = GAMMA
    eps = [  # (s, a, r, s', terminated) per episode
        [(0, 0, 1.0, 1, False), (1, 1, 4.0, 2, True)],
        [(0, 0, 1.0, 1, False), (1, 0, 3.0, 0, False), (0, 1, 2.0, 2, True)],
    ]
    R = [[1.0, 2.0], [3.0, 4.0]]
    out = []
    for ep in eps:  # over episodes
        T = len(ep)
        G = [0.0] * (T + 1)
        for t in range(T - 1, -1, -1):  # backward in time
            G[t] = ep[t][2] + g * G[t + 1]
        v = [float(V[s]) for s, *_ in ep]
        vn = [0.0 if term else float(V[s2]) for *_, s2, term in ep]
        delta = [ep[t][2] + g * vn[t] - v[t] for t in range(T)]
        adv, wrong = [0.0] * (T + 1), [0.0] * (T + 1)
        for t in range(T - 1, -1, -1):  # backward in time
            adv[t] = delta[t] + g * lam * adv[t + 1]
            wrong[t] = lam * delta[t] + g * lam * wrong[t + 1]
        w = {
            "reinforce": [G[0]] * T,
            "reward_to_go": [g**t * G[t] for t in range(T)],
            "baseline": [g**t * (G[t] - v[t]) for t in range(T)],
            "actor_critic": [g**t * float(Q[s, a] - V[s]) for t, (s, a, *_) in enumerate(ep)],
            "td": [g**t * delta[t] for t in range(T)],
            "gae": [g**t * adv[t] for t in range(T)],
            "gae_no_discount_weight": adv[:T],
            "action_dependent_baseline": [g**t * (G[t] - R[s][a]) for t, (s, a, *_) in enumerate(ep)],
            "off_by_one_return": [g**t * G[t + 1] for t in range(T)],
            "gae_wrong_recursion": [g**t * wrong[t] for t in range(T)],
        }[name]
        out.append(w + [0.0] * (3 - T))
    return out


HAND = ["reinforce", "reward_to_go", "baseline", "actor_critic", "td", "gae", "gae_no_discount_weight",
        "action_dependent_baseline", "off_by_one_return", "gae_wrong_recursion"]


@pytest.mark.parametrize("name", HAND)
def test_weights_match_hand_computation(name):
    mdp = _tiny_mdp()
    pi = mdp.policy(LOGITS)
    V, Q = mdp.state_values(pi), mdp.action_values(pi)
    opts = {"lam": 0.95} if name in ("gae", "gae_no_discount_weight", "gae_wrong_recursion") else {}
    w = episode_weights(mdp, pi, _tiny_episodes(), name, **opts)
    expected = torch.tensor(_hand_weights(name, V, Q), dtype=F64).T
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=1e-12)


def test_hand_returns_are_the_numbers_written_in_the_docstring():
    """Guard for the hand computation itself: G₀ = 3 in both episodes (γ = 0.5)."""
    w = _hand_weights("reinforce", torch.zeros(3), torch.zeros(3, 2))
    assert w == [[3.0, 3.0, 0.0], [3.0, 3.0, 3.0]]
    assert _hand_weights("off_by_one_return", torch.zeros(3), torch.zeros(3, 2)) == [[4.0, 0.0, 0.0], [4.0, 1.0, 0.0]]


def test_gae_perturbed_values_uses_the_given_critic():
    mdp = _tiny_mdp()
    pi = mdp.policy(LOGITS)
    Vhat = torch.tensor([0.3, -1.0, 0.0], dtype=F64)
    w = episode_weights(mdp, pi, _tiny_episodes(), "gae_perturbed_values", lam=0.5, values=Vhat)
    w_gae = episode_weights(mdp, pi, _tiny_episodes(), "gae", lam=0.5, values=Vhat)
    torch.testing.assert_close(w, w_gae)
    assert not torch.allclose(w, episode_weights(mdp, pi, _tiny_episodes(), "gae", lam=0.5))


def test_wrong_recursion_is_the_catalogued_variant_and_lambda_times_gae():
    """The estimator's recursion is SPECS["gae"]'s variant "gae_lambda_on_delta", whose solution
    is λ × true GAE (the premise of its predicted mean λ ∇J in pgmath.estimators.expected)."""
    assert policy_gradient.GAE_LAMBDA_ON_DELTA is SPECS["gae"].variant("gae_lambda_on_delta")
    g = torch.Generator().manual_seed(0)
    T, N = 30, 7
    r = torch.randn(T, N, generator=g, dtype=F64)
    v, nv = torch.randn(T, N, generator=g, dtype=F64), torch.randn(T, N, generator=g, dtype=F64)
    term = torch.rand(T, N, generator=g) < 0.1
    trunc = (torch.rand(T, N, generator=g) < 0.05) & ~term
    wrong = policy_gradient.GAE_LAMBDA_ON_DELTA.fn(r, v, nv, term, trunc, gamma=0.9, lam=0.7)
    torch.testing.assert_close(wrong, 0.7 * gae(r, v, nv, term, trunc, gamma=0.9, lam=0.7), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("estimator", "attr", "spec", "variant"), [
    ("off_by_one_return", "RETURNS_OFF_BY_ONE", "discounted_returns", "returns_off_by_one"),
    ("gae_wrong_recursion", "GAE_LAMBDA_ON_DELTA", "gae", "gae_lambda_on_delta"),
])
def test_biased_rules_call_the_catalogued_variant(monkeypatch, estimator, attr, spec, variant):
    """The deliberately biased rules are the spec catalogue's wrong variants, called (not copied):
    the rule's weights come from the variant's ``fn`` (the hand weights above check the values)."""
    catalogued = SPECS[spec].variant(variant)
    assert getattr(policy_gradient, attr) is catalogued
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["gamma"])
        return catalogued.fn(*args, **kwargs)

    monkeypatch.setattr(policy_gradient, attr, dataclasses.replace(catalogued, fn=spy))
    mdp = _tiny_mdp()
    w = episode_weights(mdp, mdp.policy(LOGITS), _tiny_episodes(), estimator)
    assert calls == [GAMMA] and w.shape == _tiny_episodes().rewards.shape


def _closed_form_scores(pi, states, actions, weights):
    """Σₜ wₜ (e_{sₜ} ⊗ (e_{aₜ} − π(·|sₜ))) per episode, by index_put (no autograd)."""
    T, N = states.shape
    S, A = pi.shape
    score = torch.nn.functional.one_hot(actions, A).to(F64) - pi[states]
    out = torch.zeros(N, S, A, dtype=F64)
    n_idx = torch.arange(N).expand(T, N)
    out.index_put_((n_idx, states), weights[..., None] * score, accumulate=True)
    return out


def test_vmap_gradients_equal_closed_form_and_autograd_loop():
    g = torch.Generator().manual_seed(1)
    mdp = random_mdp(4, 3, generator=g, gamma=0.9, num_terminal=1)
    logits = torch.randn(4, 3, generator=g, dtype=F64)
    pi = mdp.policy(logits)
    ep = sample_episodes(mdp, pi, 64, 200, generator=g)
    w = episode_weights(mdp, pi, ep, "gae")
    x = per_episode_gradients(logits, ep.states, ep.actions, w, num_states=4, num_actions=3)
    torch.testing.assert_close(x, _closed_form_scores(pi, ep.states, ep.actions, w), rtol=1e-10, atol=1e-12)
    # the naive way: one autograd call per episode through the core surrogate loss
    for n in range(0, 64, 9):  # over a few episodes
        th = logits.clone().requires_grad_(True)
        m = ep.valid[:, n]
        lp = torch.log_softmax(th, -1)[ep.states[:, n], ep.actions[:, n]]
        loss = policy_gradient_loss(lp, w[:, n], mask=m)  # −mean over the valid steps
        (grad,) = torch.autograd.grad(loss, th)
        torch.testing.assert_close(x[n], -grad * m.sum(), rtol=1e-10, atol=1e-12)


def test_linear_softmax_gradients_equal_feature_score():
    """∇θ log π(a|s) = x(s, a) − Σ_b π(b|s) x(s, b) for the linear-softmax policy."""
    mdp = short_corridor()
    feats = short_corridor_features(2)
    fn = LinearSoftmaxPolicy(feats)
    theta = torch.tensor([0.3, -0.1], dtype=F64)
    pi = fn(theta)
    g = torch.Generator().manual_seed(2)
    ep = sample_episodes(mdp, pi, 32, 500, generator=g)
    w = episode_weights(mdp, pi, ep, "reward_to_go")
    x = per_episode_gradients(theta, ep.states, ep.actions, w, num_states=4, num_actions=2, policy_fn=fn)
    score = feats[ep.states, ep.actions] - (pi[ep.states][..., None] * feats[ep.states]).sum(-2)
    torch.testing.assert_close(x, (w[..., None] * score).sum(0), rtol=1e-10, atol=1e-12)


def test_same_seed_same_samples_and_shapes():
    mdp = short_corridor()
    logits = torch.zeros(4, 2, dtype=F64)
    a = estimate_policy_gradient(mdp, logits, "reinforce", 50, generator=torch.Generator().manual_seed(3))
    b = estimate_policy_gradient(mdp, logits, "reinforce", 50, generator=torch.Generator().manual_seed(3))
    c = estimate_policy_gradient(mdp, logits, "reinforce", 50, generator=torch.Generator().manual_seed(4))
    assert a.shape == (50, 4, 2) and a.dtype == F64
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_samples_for_all_equals_separate_calls_on_same_seed():
    mdp = short_corridor()
    logits = torch.tensor([[0.1, 0.2], [0.0, 0.3], [0.2, 0.0], [0.0, 0.0]], dtype=F64)
    both, _ = samples_for_all(mdp, logits, {"a": {"estimator": "gae", "lam": 0.5}, "b": {"estimator": "td"}},
                              40, generator=torch.Generator().manual_seed(5))
    one = estimate_policy_gradient(mdp, logits, "gae", 40, generator=torch.Generator().manual_seed(5), lam=0.5)
    torch.testing.assert_close(both["a"], one)


def test_default_max_steps_is_the_smallest_safe_cap():
    g = torch.Generator().manual_seed(6)
    mdp = random_mdp(5, 2, generator=g, gamma=1.0, num_terminal=1)
    pi = mdp.policy(torch.randn(5, 2, generator=g, dtype=F64))
    H = default_max_steps(mdp, pi)
    assert survival_probability(mdp, pi, H) <= 1e-12 < survival_probability(mdp, pi, H - 1)


def test_survival_probability_against_a_forward_loop():
    mdp = short_corridor()
    pi = mdp.policy(torch.zeros(4, 2, dtype=F64))
    P = mdp.transition_matrix(pi)
    dist = mdp.mu0.clone()
    # forward in time: mass still in non-terminal states after t steps
    for t in range(1, 40):
        dist = dist @ P
        alive = float(dist[:3].sum())
        assert abs(survival_probability(mdp, pi, t) - alive) < 1e-14


def test_no_truncation_at_default_cap():
    mdp = short_corridor()
    logits = torch.zeros(4, 2, dtype=F64)
    _, ep = samples_for_all(mdp, logits, {"r": {"estimator": "reinforce"}}, 2000,
                            generator=torch.Generator().manual_seed(7))
    assert not bool(ep.truncated.any())


def test_registry_and_theory_flags():
    assert set(ESTIMATORS) >= {"reinforce", "reward_to_go", "baseline", "actor_critic", "td", "gae",
                               "gae_no_discount_weight"}
    assert is_unbiased("gae_no_discount_weight", gamma=1.0)
    assert not is_unbiased("gae_no_discount_weight", gamma=0.99)
    assert not is_unbiased("gae", gamma=0.9, lam=0.5, values_exact=False)
    assert is_unbiased("gae", gamma=0.9, lam=1.0, values_exact=False)
    assert is_unbiased("baseline", gamma=0.9, values_exact=False)
    assert not is_unbiased("off_by_one_return", gamma=1.0)
    assert is_unbiased("gae_perturbed_values", gamma=0.9, lam=1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(estimator="reinforcee"), "estimator must be one of"),
        (dict(estimator="reinforce", lam=0.5), "unknown option 'lam'"),
        (dict(estimator="gae", lam=1.5), "lam must lie in"),
        (dict(estimator="gae", values=torch.zeros(3, dtype=F64)), "values must have shape"),
        (dict(estimator="baseline", values=torch.full((4,), float("nan"), dtype=F64)), "values contains"),
        (dict(estimator="actor_critic", critic="v"), "critic must be"),
        (dict(num_episodes=0), "num_episodes must be an integer"),
        (dict(num_episodes=2.5), "num_episodes must be an integer"),
        (dict(generator=0), "generator must be a torch.Generator"),
        (dict(logits=torch.zeros(3, 2, dtype=F64)), "logits must have shape"),
        (dict(logits=torch.zeros(4, 2, dtype=torch.long)), "logits must have a floating"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(kwargs, match):
    args = dict(logits=torch.zeros(4, 2, dtype=F64), estimator="gae", num_episodes=5,
                generator=torch.Generator().manual_seed(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        estimate_policy_gradient(short_corridor(), args.pop("logits"), args.pop("estimator"),
                                 args.pop("num_episodes"), **args)


def test_gamma_one_without_termination_needs_max_steps():
    g = torch.Generator().manual_seed(8)
    mdp = random_mdp(3, 2, generator=g, gamma=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        estimate_policy_gradient(mdp, torch.zeros(3, 2, dtype=F64), "reinforce", 5, generator=g)


def test_per_episode_gradients_shape_validation():
    th = torch.zeros(2, 2, dtype=F64)
    s = torch.zeros(3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="must all be \\[T, N\\]"):
        per_episode_gradients(th, s, s, torch.zeros(3, 5, dtype=F64), num_states=2, num_actions=2)


def test_runs_on_device(device):
    mdp = short_corridor(device=device)
    logits = torch.zeros(4, 2, dtype=F64, device=device)
    x = estimate_policy_gradient(mdp, logits, "gae", 200, generator=torch.Generator(device=device).manual_seed(0))
    assert x.device.type == device.type and x.shape == (200, 4, 2)
    cpu = estimate_policy_gradient(short_corridor(), logits.cpu(), "gae", 200,
                                   generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all() and cpu.shape == x.shape


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    S=st.integers(2, 5),
    A=st.integers(2, 4),
    gamma=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    name=st.sampled_from(sorted(ESTIMATORS)),
)
def test_vmap_gradients_equal_closed_form_property(seed, S, A, gamma, name):
    """Fast (vmap + grad) == reference (closed-form score, index_put) for every rule and MDP shape."""
    g = torch.Generator().manual_seed(seed)
    mdp = random_mdp(S, A, generator=g, gamma=gamma, num_terminal=1)
    logits = torch.randn(S, A, generator=g, dtype=F64)
    pi = mdp.policy(logits)
    ep = sample_episodes(mdp, pi, 12, 30, generator=g)
    w = episode_weights(mdp, pi, ep, name)
    x = per_episode_gradients(logits, ep.states, ep.actions, w, num_states=S, num_actions=A)
    torch.testing.assert_close(x, _closed_form_scores(pi, ep.states, ep.actions, w), rtol=1e-10, atol=1e-10)


def test_float32_mdp_gives_float32_samples():
    mdp = short_corridor(dtype=torch.float32)
    logits = torch.zeros(4, 2)
    x = estimate_policy_gradient(mdp, logits, "gae", 3000, generator=torch.Generator().manual_seed(9))
    assert x.dtype == torch.float32
    assert unbiasedness_test(x, mdp.exact_policy_gradient(logits)).dof == 3  # float32 rounding: rank kept
