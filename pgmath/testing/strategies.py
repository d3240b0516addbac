"""Hypothesis strategies for policy-gradient data: rollouts, logits, reward groups, tabular MDPs.

* :func:`rollouts` — realistic time-major rollouts ``[T, *B]`` (:class:`pgmath.rollouts.Rollout`
  with every harness field set: ``last_values``, ``first_episode_start``, γ, λ): random
  terminated / truncated patterns, shapes, dtypes and devices, drawn the way a vectorised
  environment produces them. ``next_values[t] == values[t+1]`` inside an episode; where an
  episode was truncated ``next_values[t]`` is the value of its real final observation (a fresh
  number, not ``values[t+1]``, which belongs to the reset observation); after a termination it is
  an arbitrary number that a correct implementation must ignore.
* :func:`logit_batches` — a policy's and a reference / old policy's logits with sampled actions,
  a validity mask and advantages (:class:`LogitBatch`), for PPO losses and KL estimators.
* :func:`reward_groups` — ``[G, K]`` rewards of G prompts with K sampled answers each (GRPO).
* :func:`tabular_mdps` — small random :class:`pgmath.mdp.TabularMDP` instances.

Every strategy shrinks towards the simplest case (short rollouts, no episode ends, small
integers), so a failing check reports a small counterexample.

Checked by: ``tests/test_testing_strategies.py`` (realism invariants of every drawn rollout,
shapes/dtypes, tabular MDPs accepted by :class:`pgmath.mdp.TabularMDP`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pgmath.rollouts import Rollout

__all__ = [
    "LogitBatch",
    "batch_shapes",
    "logit_batches",
    "reward_groups",
    "rollouts",
    "tabular_mdps",
]

#: Episode-end kinds drawn per step: 0 none, 1 terminated, 2 truncated, 3 both (gymnasium allows
#: both flags at once; termination wins).
_NONE, _TERM, _TRUNC, _BOTH = 0, 1, 2, 3


#: Deprecated alias: the harness's rollouts are :class:`pgmath.rollouts.Rollout` s.
RolloutCase = Rollout


def make_rollout(
    rewards: object,
    obs_values: object,
    final_values: object,
    kinds: object,
    *,
    gamma: float,
    lam: float,
    first_episode_start: object | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    label: str = "",
) -> Rollout:
    """A realistic :class:`~pgmath.rollouts.Rollout` built from what an environment loop records.

    Args:
      rewards: ``[T, *B]`` rₜ.
      obs_values: ``[T+1, *B]`` value of the observation the env returned at each step
        (``obs_values[t+1]`` is the reset observation's value when the episode ended at t).
      final_values: ``[T, *B]`` value of the real final observation, used where an episode ended.
      kinds: ``[T, *B]`` integers: 0 no end, 1 terminated, 2 truncated, 3 both.
      gamma, lam: γ and λ.
      first_episode_start: ``[*B]`` bool (default all True).
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64))
    vo = torch.as_tensor(np.asarray(obs_values, dtype=np.float64))
    fv = torch.as_tensor(np.asarray(final_values, dtype=np.float64))
    k = torch.as_tensor(np.asarray(kinds, dtype=np.int64))
    T = r.shape[0]
    if vo.shape != (T + 1, *r.shape[1:]) or fv.shape != r.shape or k.shape != r.shape:
        raise ValueError(
            "obs_values must be [T+1, *B], final_values and kinds [T, *B]; got "
            f"{tuple(vo.shape)}, {tuple(fv.shape)}, {tuple(k.shape)} for rewards {tuple(r.shape)}"
        )
    term = (k == _TERM) | (k == _BOTH)
    trunc = (k == _TRUNC) | (k == _BOTH)
    ended = term | trunc
    next_values = torch.where(ended, fv, vo[1:])
    if first_episode_start is None:
        fes = torch.ones(r.shape[1:], dtype=torch.bool)
    else:
        fes = torch.as_tensor(np.asarray(first_episode_start, dtype=bool))
    case = Rollout(r, vo[:-1], next_values, term, trunc, vo[-1], fes, float(gamma), float(lam), label)
    return case.to(dtype=dtype, device=device)


def batch_shapes(max_dims: int = 2, max_side: int = 2) -> st.SearchStrategy[tuple[int, ...]]:
    """Batch shapes ``()``, ``(B,)``, ``(B1, B2)`` … (shrinks to ``()``)."""
    return st.integers(0, max_dims).flatmap(
        lambda n: st.tuples(*([st.integers(1, max_side)] * n))
    )


def _floats(bound: float) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _quarters(bound: float) -> st.SearchStrategy[float]:
    """Multiples of 1/4 in [−bound, bound]: cheap to draw and shrink, exact in every float dtype,
    and readable in a counterexample."""
    n = int(4 * bound)
    return st.integers(-n, n).map(lambda i: i / 4)


def _discounts() -> st.SearchStrategy[float]:
    # typical values first (they shrink to 0.5), then anything in [0, 1]
    return st.one_of(st.sampled_from([0.5, 0.9, 1.0, 0.0, 0.99]), st.floats(0.0, 1.0))


@st.composite
def rollouts(
    draw,
    *,
    min_T: int = 1,
    max_T: int = 10,
    batch_shape: st.SearchStrategy[tuple[int, ...]] | None = None,
    dtypes: Sequence[torch.dtype] = (torch.float64,),
    devices: Sequence[torch.device | str] = ("cpu",),
    gammas: st.SearchStrategy[float] | None = None,
    lams: st.SearchStrategy[float] | None = None,
    terminations: bool = True,
    truncations: bool = True,
    both_flags: bool = True,
    value_bound: float = 10.0,
) -> Rollout:
    """Realistic time-major rollouts with random episode-end patterns: a
    :class:`~pgmath.rollouts.Rollout` with every field set (``last_values``,
    ``first_episode_start``, γ, λ).

    Args:
      min_T, max_T: range of the time axis T.
      batch_shape: strategy for ``*B`` (default :func:`batch_shapes`: ``()``, ``(B,)``,
        ``(B1, B2)``).
      dtypes: float dtypes to draw from.
      devices: devices to draw from (e.g. ``("cpu", "cuda")``).
      gammas, lams: strategies for γ and λ (default: typical values and anything in [0, 1]).
      terminations, truncations: whether episodes may terminate / be truncated.
      both_flags: whether a step may be terminated and truncated at once (termination wins).
      value_bound: rewards and values are multiples of 1/4 in [−value_bound, value_bound]
        (exact in every float dtype, so a float32 or bf16 rollout holds the same numbers).
    """
    B = draw(batch_shape if batch_shape is not None else batch_shapes())
    dtype = draw(st.sampled_from(list(dtypes)))
    device = draw(st.sampled_from(list(devices)))
    kinds_allowed = [_NONE]
    if terminations:
        kinds_allowed.append(_TERM)
    if truncations:
        kinds_allowed.append(_TRUNC)
    if terminations and truncations and both_flags:
        kinds_allowed.append(_BOTH)
    nums = arrays(np.float64, B, elements=_quarters(value_bound))
    # one list element per time step, so shrinking can delete steps (shorten T)
    step = st.tuples(nums, nums, nums, arrays(np.int64, B, elements=st.sampled_from(kinds_allowed)))
    steps = draw(st.lists(step, min_size=min_T, max_size=max_T))
    v0 = draw(nums)
    rewards = np.stack([s[0] for s in steps])
    obs_values = np.stack([v0] + [s[1] for s in steps])  # obs_values[t+1]: the obs after step t
    final_values = np.stack([s[2] for s in steps])
    kinds = np.stack([s[3] for s in steps])
    first = draw(arrays(np.bool_, B))
    gamma = draw(gammas if gammas is not None else _discounts())
    lam = draw(lams if lams is not None else _discounts())
    return make_rollout(
        rewards, obs_values, final_values, kinds, gamma=gamma, lam=lam,
        first_episode_start=first, dtype=dtype, device=device,
    )


@dataclass(frozen=True, repr=False)
class LogitBatch:
    """A batch of a policy's and a reference policy's logits at sampled actions.

    Attributes:
      logits: ``[*S, K]`` logits of the policy being optimised (πθ), K actions / tokens.
      ref_logits: ``[*S, K]`` logits of the old / reference policy (π_old or π_ref).
      actions: ``[*S]`` int64 sampled actions.
      mask: ``[*S]`` bool, entries that count (e.g. response tokens); at least one is true.
      advantages: ``[*S]`` Âₜ.
    ``*S`` is ``(N,)`` (a batch of steps) or ``(B, L)`` (sequences of tokens).
    """

    logits: torch.Tensor
    ref_logits: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor

    @property
    def log_probs(self) -> torch.Tensor:
        """``[*S]`` log πθ(aₜ)."""
        return _gather_log_probs(self.logits, self.actions)

    @property
    def ref_log_probs(self) -> torch.Tensor:
        """``[*S]`` log π_ref(aₜ)."""
        return _gather_log_probs(self.ref_logits, self.actions)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.actions.shape)

    def __repr__(self) -> str:
        def fmt(x: torch.Tensor) -> str:
            a = x.detach().cpu()
            a = a.to(torch.int8) if a.dtype == torch.bool else a
            return np.array2string(a.numpy(), separator=", ", max_line_width=10_000)

        return (
            f"LogitBatch(shape={self.shape}, K={self.logits.shape[-1]}, dtype={self.logits.dtype}, "
            f"log_probs={fmt(self.log_probs)}, ref_log_probs={fmt(self.ref_log_probs)}, "
            f"advantages={fmt(self.advantages)}, mask={fmt(self.mask)})"
        )


def _gather_log_probs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    # z[a] − logsumexp(z) (torch.log_softmax is ~1000× slower on tiny CPU tensors with >1 thread)
    picked = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, -1)


@st.composite
def logit_batches(
    draw,
    *,
    max_n: int = 6,
    max_actions: int = 5,
    sequences: bool = True,
    dtypes: Sequence[torch.dtype] = (torch.float64,),
    devices: Sequence[torch.device | str] = ("cpu",),
    logit_bound: float = 5.0,
    max_shift: float = 1.0,
) -> LogitBatch:
    """Policy / reference logits with sampled actions, a mask and advantages (:class:`LogitBatch`).

    The reference logits are the policy's plus a shift of size up to ``max_shift`` per logit, so
    probability ratios fall on both sides of PPO's clip range. Shapes are ``(N,)`` or, with
    ``sequences``, ``(B, L)`` token grids; the mask keeps at least one entry.
    """
    seq = draw(st.booleans()) if sequences else False
    if seq:
        S = (draw(st.integers(1, 3)), draw(st.integers(1, max_n)))
    else:
        S = (draw(st.integers(1, max_n)),)
    K = draw(st.integers(2, max_actions))
    dtype = draw(st.sampled_from(list(dtypes)))
    device = draw(st.sampled_from(list(devices)))
    # eighths: cheap to shrink and readable; the log-probs built from them are not round numbers
    logits = draw(arrays(np.float64, (*S, K), elements=_quarters(2 * logit_bound).map(lambda x: x / 2)))
    shift = draw(arrays(np.float64, (*S, K), elements=_quarters(2 * max_shift).map(lambda x: x / 2)))
    actions = draw(arrays(np.int64, S, elements=st.integers(0, K - 1)))
    mask = draw(arrays(np.bool_, S, elements=st.booleans(), fill=st.just(True)))
    if not mask.any():
        mask.flat[0] = True
    adv = draw(arrays(np.float64, S, elements=_quarters(5.0)))

    def t(a: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(a)
        return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)

    return LogitBatch(t(logits), t(logits + shift), t(actions), t(mask), t(adv))


@st.composite
def reward_groups(
    draw,
    *,
    max_groups: int = 4,
    max_group_size: int = 6,
    dtypes: Sequence[torch.dtype] = (torch.float64,),
    devices: Sequence[torch.device | str] = ("cpu",),
) -> torch.Tensor:
    """``[G, K]`` rewards: G prompts, K ≥ 2 sampled answers each (GRPO / RLOO groups).

    Rewards are either binary (verifiable 0/1 rewards, so constant groups are common) or real;
    they shrink to constant groups of zeros.
    """
    G = draw(st.integers(1, max_groups))
    K = draw(st.integers(2, max_group_size))
    binary = draw(st.booleans())
    elements = st.sampled_from([0.0, 1.0]) if binary else _quarters(5.0)
    r = draw(arrays(np.float64, (G, K), elements=elements))
    dtype = draw(st.sampled_from(list(dtypes)))
    device = draw(st.sampled_from(list(devices)))
    return torch.as_tensor(r).to(device=device, dtype=dtype)


@st.composite
def tabular_mdps(
    draw,
    *,
    max_states: int = 5,
    max_actions: int = 3,
    gammas: st.SearchStrategy[float] | None = None,
    episodic: bool | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
):
    """Small random :class:`pgmath.mdp.TabularMDP` instances.

    Args:
      max_states, max_actions: upper bounds on S (≥ 2) and A (≥ 1).
      gammas: strategy for γ (default: typical values in [0, 0.99] and, for episodic MDPs, 1).
      episodic: with terminal states (``True``), without (``False``), or either (``None``). An
        episodic MDP has one to S−1 absorbing zero-reward terminal states, and every non-terminal
        state reaches one with probability ≥ 0.1 per step under every action, so γ = 1 is proper.
      dtype, device: of the MDP's tables.
    """
    from pgmath.mdp import TabularMDP

    S = draw(st.integers(2, max_states))
    A = draw(st.integers(1, max_actions))
    epi = draw(st.booleans()) if episodic is None else episodic
    n_term = draw(st.integers(1, S - 1)) if epi else 0
    terminal = np.zeros(S, dtype=bool)
    if n_term:
        terminal[S - n_term:] = True
    weights = draw(arrays(np.float64, (S, A, S), elements=st.floats(0.0, 1.0)))
    weights = weights + 1e-3  # every transition possible: rows are proper distributions
    P = weights / weights.sum(-1, keepdims=True)
    if n_term:
        # at least 0.1 probability of ending from every non-terminal state, under every action
        to_term = P[:, :, terminal].sum(-1, keepdims=True)
        mix = np.where(to_term < 0.1, (0.1 - to_term) / (1.0 - to_term), 0.0)
        P = (1.0 - mix) * P
        P[:, :, terminal] += mix / n_term
        for s in np.flatnonzero(terminal):
            P[s] = 0.0
            P[s, :, s] = 1.0
    R = draw(arrays(np.float64, (S, A), elements=_floats(1.0)))
    R[terminal] = 0.0
    mu_w = draw(arrays(np.float64, (S,), elements=st.floats(0.0, 1.0)))
    mu_w = np.where(terminal, 0.0, mu_w + 1e-3)
    mu0 = mu_w / mu_w.sum()
    if gammas is None:
        choices = [0.9, 0.5, 0.0, 0.99] + ([1.0] if n_term else [])
        gammas = st.one_of(st.sampled_from(choices), st.floats(0.0, 0.99))
    gamma = draw(gammas)
    return TabularMDP(
        P, R, gamma, mu0, terminal if n_term else None, dtype=dtype, device=device
    )
