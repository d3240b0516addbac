"""Sampling episodes from a tabular MDP, vectorized across episodes in torch.

Every step of every episode is one categorical draw::

    s₀ ~ μ₀,   aₜ ~ π(·|sₜ),   sₜ₊₁ ~ P(·|sₜ, aₜ),   rₜ = R[sₜ, aₜ]

All N episodes advance together, one time step per loop iteration. When the table is small
(S·(A·S)² <= 5·10⁷, e.g. S = 16, A = 4) the pair (aₜ, sₜ₊₁) is one draw from the joint row
π(a|s) P(s'|s, a) by Walker's alias method (O(1) per draw, one uniform); larger MDPs draw the
action and the next state separately (alias tables, or a single ``torch.searchsorted`` over a
row-offset CDF when even those are too large). Uniforms come only from the caller's ``generator``.

Output layout (time-major ``[T, N]``, core conventions; T = min(max_steps, longest episode)):

- ``states[t]`` = sₜ, ``actions[t]`` = aₜ, ``rewards[t]`` = rₜ = R[sₜ, aₜ] (the expected reward:
  the MDP's reward model is deterministic given (s, a)), ``next_states[t]`` = sₜ₊₁,
  ``log_probs[t]`` = log π(aₜ|sₜ).
- ``terminated[t]``: sₜ₊₁ is terminal (the episode ended, nothing to bootstrap).
- ``truncated[t]``: the step cap was hit: t = max_steps - 1 and sₜ₊₁ is not terminal.
- ``valid[t]``: step t belongs to the episode (t < lengths[n]); ``lengths [N]`` = steps taken.

Padding (``valid`` false, only ever after a ``terminated`` step): ``states`` = ``next_states``
= the terminal state the episode ended in, ``actions`` = 0, ``rewards`` = 0, ``log_probs`` = 0,
``terminated`` = ``truncated`` = False. With this padding the core recursions (returns, GAE) give
0 on padding and leave the valid steps unchanged, because the terminated step cuts the recursion.

Unbiasedness and truncation. An episode that terminates before ``max_steps`` is a draw of the
full return; its discounted return Σₜ γᵗ rₜ is unbiased for J = μ₀ · V. A truncated episode
misses γ^T E[V(s_T)], which is at most γ^T max|R| / (1 - γ). Either (a) pick
``max_steps >= steps_for_tolerance(mdp, tol)`` so that bias is below ``tol`` (γ < 1), or
(b) bootstrap the truncated tail with the exact values: ``episodes.returns(gamma,
final_values=mdp.state_values(pi))`` is then exactly unbiased for any ``max_steps``, because
E[Σ_{t<T} γᵗ rₜ + γ^T V(s_T)] = J (Markov property). With γ = 1 and terminal states, pick
``max_steps`` so that (almost) every episode terminates and check ``truncated.any()``.

Checked by: tests/test_mdp_sampler.py (chi-square goodness of fit of the state-action
frequencies against the exact occupancy, with a stated false-alarm rate and fixed seeds; a
deliberately wrong sampler is rejected; the reference loop sampler agrees in distribution;
layout and padding) and the ``pgmath verify`` row "sampler occupancy chi-square".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import validate_positive, validate_unit_interval

__all__ = ["Episodes", "sample_episodes", "sample_episodes_reference", "steps_for_tolerance"]


@dataclass(frozen=True)
class Episodes:
    """N episodes, time-major ``[T, N]`` (see the module docstring for padding)."""

    states: torch.Tensor  # [T, N] long, sₜ
    actions: torch.Tensor  # [T, N] long, aₜ (0 on padding)
    rewards: torch.Tensor  # [T, N] float, rₜ = R[sₜ, aₜ] (0 on padding)
    next_states: torch.Tensor  # [T, N] long, sₜ₊₁
    terminated: torch.Tensor  # [T, N] bool, sₜ₊₁ terminal
    truncated: torch.Tensor  # [T, N] bool, cut at the step cap, sₜ₊₁ not terminal
    log_probs: torch.Tensor  # [T, N] float, log π(aₜ|sₜ) (0 on padding)
    valid: torch.Tensor  # [T, N] bool, t < lengths[n]
    lengths: torch.Tensor  # [N] long, number of valid steps of each episode

    @property
    def num_episodes(self) -> int:
        return int(self.states.shape[1])

    @property
    def num_steps(self) -> int:
        """T, the length of the time axis."""
        return int(self.states.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """Alias of ``valid``."""
        return self.valid

    def returns(self, gamma: float, final_values: torch.Tensor | None = None) -> torch.Tensor:
        """Per-episode discounted return ``[N]``: Σ_{t<Lₙ} γᵗ rₜ (+ γ^Lₙ V(s_Lₙ) if truncated).

        Args:
          gamma: discount γ ∈ [0, 1].
          final_values: optional ``[S]`` state values; for a truncated episode the tail
            γ^Lₙ V(s_Lₙ) is added. With V = the exact ``mdp.state_values(pi)`` the result is an
            unbiased estimate of J = μ₀ · V whatever ``max_steps`` was.
        """
        gamma = validate_unit_interval(gamma, "gamma")
        T = self.num_steps
        disc = gamma ** torch.arange(T, dtype=self.rewards.dtype, device=self.rewards.device)
        G = (disc[:, None] * self.rewards).sum(0)
        if final_values is not None:
            last = self.truncated[-1]
            tail = final_values.to(self.rewards.dtype)[self.next_states[-1]] * (gamma**T)
            G = G + torch.where(last, tail, torch.zeros_like(tail))
        return G


def _validate_int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {x!r}")
    return int(x)


#: Largest K·n² for which alias tables are built (their construction costs O(K n²)) ...
_ALIAS_LIMIT = 50_000_000
#: ... and the most columns (Vose's construction makes n vectorized passes).
_ALIAS_MAX_COLS = 256


class _RowSampler:
    """Draws from the rows of a ``[K, n]`` table of categorical distributions, many at once.

    Small tables (n <= 256 columns) use Walker's alias method (O(1) per draw: one uniform u gives the column
    j = ⌊u n⌋ and the coin frac(u n) < prob[k, j], else alias[k, j]); the tables are built
    with Vose's algorithm, vectorized across rows. Large tables (K n² > 5·10⁷) use one
    ``torch.searchsorted`` over the row-offset CDF ``k + Σ_{j' <= j} p[k, j']`` of all rows,
    which is non-decreasing over the flattened array (row k ends at exactly k + 1).
    Both are exact up to float64 round-off (~1e-16 per probability, ~1e-12 for the offset CDF
    with 10⁴ rows); neither can return a zero-probability column.
    """

    def __init__(self, p: torch.Tensor) -> None:
        p = p.detach().to(torch.float64)
        K, n = p.shape
        self.n = n
        dev = p.device
        if n <= _ALIAS_MAX_COLS and K * n * n <= _ALIAS_LIMIT:
            self.prob, self.alias = _alias_tables(p)
            self.flat = None
        else:
            c = p.cumsum(-1)
            c = c / c[:, -1:]  # exact 1 at the end of every row
            rows = torch.arange(K, dtype=torch.float64, device=dev)[:, None]
            self.flat = (rows + c).reshape(-1)
            col = torch.arange(n, device=dev).expand(K, n)
            last = torch.where(p > 0, col, torch.zeros_like(col)).amax(-1)
            self.last = last + torch.arange(K, device=dev) * n

    def draw(self, row: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One draw from row ``row[i]`` per uniform ``u[i]`` ∈ [0, 1) (float64)."""
        n = self.n
        if self.flat is None:
            x = u * n  # < n for every double u < 1, so j <= n - 1 without a clamp
            j = x.long()
            idx = row * n + j
            return torch.where(x - j < self.prob[idx], j, self.alias[idx])
        idx = torch.searchsorted(self.flat, row.to(torch.float64) + u, right=True)
        idx = torch.minimum(idx, self.last[row])  # round-off guard: never past the row's support
        return idx - row * n


def _alias_tables(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vose's alias tables for every row of ``p [K, n]``, flattened to ``[K·n]`` each.

    Per row: q = n p; repeatedly pair a column with q < 1 ("small") with one with q >= 1
    ("large"): prob[small] = q[small], alias[small] = large, q[large] -= 1 - q[small].
    Columns never paired keep prob = 1. Pr(j) = (prob[j] + Σ_{i: alias[i] = j} (1 - prob[i])) / n.
    """
    K, n = p.shape
    dev = p.device
    q = p * n
    prob = torch.ones(K, n, dtype=torch.float64, device=dev)
    alias = torch.arange(n, device=dev).expand(K, n).clone()
    done = torch.zeros(K, n, dtype=torch.bool, device=dev)
    rows = torch.arange(K, device=dev)
    # one small column per row is settled per pass; at most n - 1 passes
    for _ in range(n - 1):
        small = (q < 1) & ~done
        large = (q >= 1) & ~done
        has = small.any(1) & large.any(1)
        if not bool(has.any()):
            break
        r = rows[has]
        s = small[has].to(torch.int8).argmax(1)
        big = large[has].to(torch.int8).argmax(1)
        qs = q[r, s]
        prob[r, s] = qs
        alias[r, s] = big
        done[r, s] = True
        q[r, big] = q[r, big] - (1 - qs)
    return prob.reshape(-1), alias.reshape(-1)


def sample_episodes(
    mdp: TabularMDP,
    pi: torch.Tensor,
    num_episodes: int,
    max_steps: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> Episodes:
    """Sample ``num_episodes`` episodes of at most ``max_steps`` steps, all in lockstep.

    Args:
      mdp: the MDP (its tables are moved to ``device`` if needed).
      pi: ``[S, A]`` policy table π(a|s). ``log_probs`` are differentiable w.r.t. ``pi`` when it
        requires grad (one gather at the end; the draws themselves use ``pi.detach()``).
      num_episodes: N >= 1.
      max_steps: step cap >= 1; an episode still running after it is ``truncated``.
      generator: ``torch.Generator`` on ``device``: the only source of randomness.
      device: where to sample (default: the MDP's device).

    Returns:
      :class:`Episodes`, time-major ``[T, N]`` with T = min(max_steps, longest episode).
    """
    N = _validate_int(num_episodes, "num_episodes")
    T_max = _validate_int(max_steps, "max_steps")
    dev = mdp.device if device is None else torch.device(device)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != dev.type:
        raise ValueError(f"generator is on {generator.device} but sampling runs on {dev}")
    if mdp.device != dev:
        mdp = mdp.to(device=dev)
        pi = pi.to(dev)
    pi = mdp.validate_policy(pi)
    S, A = mdp.num_states, mdp.num_actions

    # one draw of the pair (aₜ, sₜ₊₁) from the joint row π(a|s) P(s'|s, a) when the table is small,
    # else two draws (action, then next state)
    joint = A * S <= _ALIAS_MAX_COLS and S * (A * S) ** 2 <= _ALIAS_LIMIT
    if joint:
        draw_step = _RowSampler((pi.detach()[:, :, None] * mdp.P).reshape(S, A * S))
    else:
        draw_action = _RowSampler(pi)
        draw_next = _RowSampler(mdp.P.reshape(S * A, S))
    terminal = mdp.terminal
    has_terminal = bool(terminal.any())

    f64 = torch.float64
    s0 = _RowSampler(mdp.mu0[None]).draw(
        torch.zeros(N, dtype=torch.long, device=dev), torch.rand(N, generator=generator, device=dev, dtype=f64)
    )
    s = s0
    live = torch.arange(N, device=dev)  # episodes still running (compacted as they end)
    rec_idx, rec_s, rec_a, rec_s2 = [], [], [], []
    # forward in time; each step draws (aₜ, sₜ₊₁) for the running episodes only, and the
    # loop stops when every episode has ended
    for _ in range(T_max):
        n_live = live.numel()
        if joint:
            pair = draw_step.draw(s, torch.rand(n_live, generator=generator, device=dev, dtype=f64))
            a = torch.div(pair, S, rounding_mode="floor")
            s_next = pair - a * S
        else:
            u = torch.rand(2, n_live, generator=generator, device=dev, dtype=f64)
            a = draw_action.draw(s, u[0])
            s_next = draw_next.draw(s * A + a, u[1])
        rec_idx.append(live)
        rec_s.append(s)
        rec_a.append(a)
        rec_s2.append(s_next)
        s = s_next
        if has_terminal:
            keep = torch.nonzero(~terminal[s_next]).squeeze(1)
            if keep.numel() < n_live:
                live, s = live[keep], s[keep]
                if live.numel() == 0:
                    break

    T = len(rec_s2)
    pi_flat = pi.reshape(-1)
    R_flat = mdp.R.reshape(-1)
    if not has_terminal:  # every episode runs to the cap: plain stacking, no padding
        st, ac, ns = torch.stack(rec_s), torch.stack(rec_a), torch.stack(rec_s2)
        k = st * A + ac
        valid = torch.ones(T, N, dtype=torch.bool, device=dev)
        terminated = torch.zeros(T, N, dtype=torch.bool, device=dev)
        truncated = torch.zeros(T, N, dtype=torch.bool, device=dev)
        truncated[-1] = True
        return Episodes(
            states=st, actions=ac, rewards=R_flat[k], next_states=ns, terminated=terminated,
            truncated=truncated, log_probs=torch.log(pi_flat[k]), valid=valid,
            lengths=torch.full((N,), T, dtype=torch.long, device=dev),
        )

    # the recorded steps, flattened: step t of episode n goes to [t, n] (linear index t·N + n)
    n_all = torch.cat(rec_idx)
    t_all = torch.cat([torch.full_like(i, t) for t, i in enumerate(rec_idx)])
    lin = t_all * N + n_all
    s_all, a_all, s2_all = torch.cat(rec_s), torch.cat(rec_a), torch.cat(rec_s2)
    k_all = s_all * A + a_all
    lengths = torch.bincount(n_all, minlength=N)
    is_last = t_all == lengths[n_all] - 1
    final = torch.empty(N, dtype=torch.long, device=dev)
    final[n_all[is_last]] = s2_all[is_last]  # the state each episode ends in (padding value)

    def scatter(values: torch.Tensor, fill: torch.Tensor | float | bool) -> torch.Tensor:
        if isinstance(fill, torch.Tensor):
            out = fill.repeat(T)
        else:
            out = torch.full((T * N,), fill, dtype=values.dtype, device=dev)
        out[lin] = values  # in place (autograd records it when values require grad)
        return out.view(T, N)

    valid = torch.arange(T, device=dev)[:, None] < lengths[None]
    terminated = scatter(terminal[s2_all], False)
    truncated = torch.zeros(T, N, dtype=torch.bool, device=dev)
    if T == T_max:
        truncated[-1] = valid[-1] & ~terminated[-1]
    return Episodes(
        states=scatter(s_all, final),
        actions=scatter(a_all, 0),
        rewards=scatter(R_flat[k_all], 0.0),
        next_states=scatter(s2_all, final),
        terminated=terminated,
        truncated=truncated,
        log_probs=scatter(torch.log(pi_flat[k_all]), 0.0),
        valid=valid,
        lengths=lengths,
    )


def sample_episodes_reference(
    mdp: TabularMDP, pi: torch.Tensor, num_episodes: int, max_steps: int, *, seed: int
) -> Episodes:
    """Reference sampler: one episode at a time in a plain Python loop (numpy ``Generator``).

    Same output layout as :func:`sample_episodes` (a different random stream, so it agrees in
    distribution, not draw by draw). The benchmark's named baseline.
    """
    N = _validate_int(num_episodes, "num_episodes")
    T_max = _validate_int(max_steps, "max_steps")
    pi = mdp.validate_policy(pi).detach()
    rng = np.random.default_rng(seed)
    P = mdp.P.cpu().numpy()
    R = mdp.R.cpu().numpy()
    pi_np = pi.cpu().numpy()
    mu0 = mdp.mu0.cpu().numpy()
    terminal = mdp.terminal.cpu().numpy()
    S, A = mdp.num_states, mdp.num_actions
    cols: list[list[tuple[int, int, float, int, bool]]] = []
    # over episodes, one at a time
    for _ in range(N):
        s = int(rng.choice(S, p=mu0))
        steps = []
        # forward in time until termination or the cap
        for _t in range(T_max):
            a = int(rng.choice(A, p=pi_np[s]))
            s2 = int(rng.choice(S, p=P[s, a]))
            steps.append((s, a, float(R[s, a]), s2, bool(terminal[s2])))
            s = s2
            if terminal[s2]:
                break
        cols.append(steps)
    T = max(len(c) for c in cols)
    st = np.zeros((T, N), dtype=np.int64)
    ac = np.zeros((T, N), dtype=np.int64)
    rw = np.zeros((T, N))
    ns = np.zeros((T, N), dtype=np.int64)
    te = np.zeros((T, N), dtype=bool)
    tr = np.zeros((T, N), dtype=bool)
    va = np.zeros((T, N), dtype=bool)
    lp = np.zeros((T, N))
    for n, steps in enumerate(cols):  # over episodes: copy, then pad with the final state
        for t, (s, a, r, s2, term) in enumerate(steps):
            st[t, n], ac[t, n], rw[t, n], ns[t, n], te[t, n], va[t, n] = s, a, r, s2, term, True
            lp[t, n] = math.log(pi_np[s, a])
        L = len(steps)
        st[L:, n] = ns[L:, n] = steps[-1][3]
        tr[L - 1, n] = L == T_max and not steps[-1][4]
    dev, dt = mdp.device, mdp.dtype

    def tt(x: np.ndarray) -> torch.Tensor:
        out = torch.as_tensor(x, device=dev)
        return out.to(dt) if out.is_floating_point() else out

    valid = tt(va)
    return Episodes(tt(st), tt(ac), tt(rw), tt(ns), tt(te), tt(tr), tt(lp), valid, valid.sum(0))


def steps_for_tolerance(mdp: TabularMDP, tol: float) -> int:
    """Smallest T with γ^T · max|R| / (1 - γ) <= tol: a step cap whose truncation bias is below tol.

    Requires γ < 1 (with γ = 1 no cap bounds the bias; rely on termination instead).
    """
    tol = validate_positive(tol, "tol")
    if mdp.gamma >= 1.0:
        raise ValueError("gamma must be < 1 for a truncation-bias bound; with gamma = 1 rely on terminal states")
    rmax = float(mdp.R.abs().max())
    if rmax == 0.0 or mdp.gamma == 0.0:
        return 1
    bound = rmax / (1 - mdp.gamma)
    if bound <= tol:
        return 1
    return max(1, math.ceil(math.log(tol / bound) / math.log(mdp.gamma)))
