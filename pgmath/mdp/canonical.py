"""Canonical small MDPs whose values and gradients are known.

- ``bandit(means)``: one decision, then the episode ends. J(π) = Σₐ π(a) mₐ.
- ``chain(n)``: a corridor of n states, reward 1 for reaching the right end (terminal).
- ``short_corridor()``: Sutton & Barto, 2nd ed., Example 13.1 (the second state reverses the
  actions; reward -1 per step; γ = 1). With features that make all states look alike the
  best stochastic policy goes right with probability ≈ 0.59 and is worth ≈ -11.6.
- ``gridworld(...)``: a rows × cols grid with terminal cells; the default is the 4 × 4 grid of
  Sutton & Barto Example 4.1 / Figure 4.1 (reward -1 per step, γ = 1, terminal corners).
- ``random_mdp(S, A, generator=...)``: dense random dynamics and rewards, for property tests.

Finite-horizon versions (time in the state) are in :mod:`pgmath.mdp.finite_horizon`.

The published numbers are kept as constants (:data:`FIGURE_4_1`, :data:`EXAMPLE_13_1`) next to
the closed form of Example 13.1 (:func:`short_corridor_value`) and a maximiser that takes the
policy evaluation under test (:func:`short_corridor_optimum`).

Checked by: tests/test_mdp_canonical.py (published numbers of Example 13.1 and Figure 4.1
recomputed by the library; closed-form chain and bandit values) and the ``figure_4_1`` /
``example_13_1`` properties of the specs in :mod:`pgmath.specs.mdp` (tests/test_specs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pgmath.mdp.tabular import TabularMDP
from pgmath.validation import validate_unit_interval

__all__ = [
    "EXAMPLE_13_1",
    "FIGURE_4_1",
    "GRID_ACTIONS",
    "bandit",
    "chain",
    "gridworld",
    "random_mdp",
    "short_corridor",
    "short_corridor_features",
    "short_corridor_optimum",
    "short_corridor_value",
]

#: Sutton & Barto (2018), Figure 4.1, k = ∞: v_π of the equiprobable random policy on the 4 × 4
#: grid of :func:`gridworld` (row by row).
FIGURE_4_1: tuple[tuple[int, ...], ...] = (
    (0, -14, -20, -22),
    (-14, -18, -20, -20),
    (-20, -20, -18, -14),
    (-22, -20, -14, 0),
)
#: Sutton & Barto (2018), Example 13.1: the best P(right) is "about 0.59", worth "about −11.6"
#: (printed to two figures: exactly 2 − √2 and −6 − 4√2, see :func:`short_corridor_value`).
EXAMPLE_13_1: dict[str, float] = {"p_right": 0.59, "value": -11.6}

#: Action order of :func:`gridworld` (row, column) moves.
GRID_ACTIONS: tuple[str, ...] = ("up", "right", "down", "left")
_GRID_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


def _validate_count(n: object, name: str, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def bandit(
    means: Sequence[float] | torch.Tensor,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """A multi-armed bandit as a one-step episodic MDP.

    State 0 is the decision state, state 1 is terminal; every action a leads to the terminal
    state with expected reward ``means[a]``. γ = 1, so J(π) = Σₐ π(a|0) mₐ and the exact
    softmax gradient is ∂J/∂θₐ = π(a) (mₐ - J).

    Args:
      means: ``[A]`` expected reward of each arm (A >= 1).
    """
    m = torch.as_tensor(np.asarray(means, dtype=np.float64) if not isinstance(means, torch.Tensor) else means)
    if m.dim() != 1 or m.numel() == 0:
        raise ValueError(f"means must be a non-empty 1-D sequence, got shape {tuple(m.shape)}")
    A = m.numel()
    P = torch.zeros(2, A, 2, dtype=torch.float64)
    P[:, :, 1] = 1.0
    R = torch.zeros(2, A, dtype=torch.float64)
    R[0] = m.to(torch.float64).cpu()
    return TabularMDP(P, R, 1.0, [1.0, 0.0], [False, True], dtype=dtype, device=device)


def chain(
    n: int,
    *,
    gamma: float = 0.9,
    slip: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """A chain of n states 0 … n-1; state n-1 is terminal, the episode starts in state 0.

    Action 0 moves left (staying put at state 0), action 1 moves right; with probability
    ``slip`` the move goes the other way. Entering state n-1 pays 1, every other step pays 0,
    so with slip = 0 the always-right policy has V(s) = γ^(n-2-s) for s < n-1.

    Args:
      n: number of states (>= 2).
      gamma: discount γ ∈ [0, 1].
      slip: probability ∈ [0, 1] that a move is reversed.
    """
    n = _validate_count(n, "n", 2)
    slip = validate_unit_interval(slip, "slip")
    P = np.zeros((n, 2, n))
    for s in range(n - 1):  # forward over the non-terminal states
        left, right = max(s - 1, 0), s + 1
        P[s, 0, left] += 1 - slip
        P[s, 0, right] += slip
        P[s, 1, right] += 1 - slip
        P[s, 1, left] += slip
    P[n - 1, :, n - 1] = 1.0
    R = P[:, :, n - 1].copy()
    R[n - 1] = 0.0
    mu0 = np.zeros(n)
    mu0[0] = 1.0
    terminal = np.zeros(n, dtype=bool)
    terminal[n - 1] = True
    return TabularMDP(P, R, gamma, mu0, terminal, dtype=dtype, device=device)


def short_corridor(
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> TabularMDP:
    """Short corridor with switched actions (Sutton & Barto, 2nd ed., Example 13.1).

    States 0, 1, 2 are non-terminal, state 3 is the goal (terminal); the episode starts in
    state 0. Actions: 0 = left, 1 = right. In states 0 and 2 they move as labelled (left in
    state 0 stays in state 0); in state 1 they are reversed (right goes to 0, left goes to 2).
    Reward -1 per step, γ = 1.
    """
    P = np.zeros((4, 2, 4))
    LEFT, RIGHT = 0, 1
    P[0, LEFT, 0] = 1.0
    P[0, RIGHT, 1] = 1.0
    P[1, LEFT, 2] = 1.0  # reversed
    P[1, RIGHT, 0] = 1.0  # reversed
    P[2, LEFT, 1] = 1.0
    P[2, RIGHT, 3] = 1.0
    P[3, :, 3] = 1.0
    R = -np.ones((4, 2))
    R[3] = 0.0
    return TabularMDP(P, R, 1.0, [1.0, 0.0, 0.0, 0.0], [False, False, False, True], dtype=dtype, device=device)


def short_corridor_value(p: float) -> float:
    """J(p) = v(start) of :func:`short_corridor` when every state goes right with probability p.

    The closed form (2p − 4) / (p (1 − p)) of Sutton & Barto, Exercise 13.1 (derived
    symbolically by ``proofs/short_corridor.py``); maximal at p* = 2 − √2 with J* = −6 − 4√2.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p!r}")
    return (2 * p - 4) / (p * (1 - p))


def short_corridor_optimum(
    values_fn: Callable[[TabularMDP, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(p*, J*) of Example 13.1: maximise J(p) = V(start) over P(right) = p ∈ (0, 1).

    Args:
      values_fn: ``(mdp, pi) -> V [S]``, the policy evaluation used (default
        :meth:`TabularMDP.state_values`); the policy is π(right|s) = p in every state.
      device: where to evaluate.
    """
    from scipy.optimize import minimize_scalar

    mdp = short_corridor(device=device)
    evaluate = TabularMDP.state_values if values_fn is None else values_fn

    def neg_J(p: float) -> float:
        pi = torch.tensor([[1 - p, p]] * 4, dtype=mdp.dtype, device=mdp.device)
        return -float(evaluate(mdp, pi)[0])

    res = minimize_scalar(neg_J, bounds=(1e-3, 1 - 1e-3), method="bounded", options={"xatol": 1e-10})
    return float(res.x), -float(res.fun)


def short_corridor_features(
    num_params: int = 2, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """Features x(s, a) ``[4, 2, K]`` of Example 13.1, identical in every state.

    ``num_params=2`` is the book's choice x(s, right) = [1, 0], x(s, left) = [0, 1];
    ``num_params=1`` uses x(s, right) = [1], x(s, left) = [0], so P(right) = σ(θ) exactly.
    Use with :class:`pgmath.mdp.LinearSoftmaxPolicy`.
    """
    if num_params == 2:
        per_action = [[0.0, 1.0], [1.0, 0.0]]  # rows: left, right
    elif num_params == 1:
        per_action = [[0.0], [1.0]]
    else:
        raise ValueError(f"num_params must be 1 or 2, got {num_params!r}")
    x = torch.tensor(per_action, dtype=dtype, device=device)
    return x.expand(4, 2, num_params).clone()


def gridworld(
    rows: int = 4,
    cols: int = 4,
    *,
    terminals: Sequence[tuple[int, int]] | None = None,
    step_reward: float = -1.0,
    gamma: float = 1.0,
    slip: float = 0.0,
    start: Sequence[tuple[int, int]] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """A rows × cols grid; state index = row · cols + col, actions :data:`GRID_ACTIONS`.

    A move that would leave the grid leaves the state unchanged. Every step from a
    non-terminal cell pays ``step_reward``. With probability ``slip`` the move goes in a
    uniformly random direction instead (the intended one included). The defaults are the
    4 × 4 grid of Sutton & Barto Example 4.1 (terminal corners (0, 0) and (3, 3), reward -1,
    γ = 1), whose equiprobable-random-policy values are tabulated in their Figure 4.1.

    Args:
      rows, cols: grid size (>= 1 each, at least two cells).
      terminals: terminal cells (row, col); default the top-left and bottom-right corners.
      step_reward: reward of every step from a non-terminal cell.
      gamma: discount γ ∈ [0, 1].
      slip: probability ∈ [0, 1] of a uniformly random move.
      start: start cells, uniform over them; default every non-terminal cell.
    """
    rows = _validate_count(rows, "rows", 1)
    cols = _validate_count(cols, "cols", 1)
    if rows * cols < 2:
        raise ValueError(f"rows * cols must be >= 2, got {rows} x {cols}")
    slip = validate_unit_interval(slip, "slip")
    if terminals is None:
        terminals = [(0, 0), (rows - 1, cols - 1)]
    S = rows * cols

    def index(cell: tuple[int, int], name: str) -> int:
        r, c = cell
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"{name} cell {cell} lies outside the {rows} x {cols} grid")
        return r * cols + c

    terminal = np.zeros(S, dtype=bool)
    for cell in terminals:
        terminal[index(cell, "terminals")] = True
    if terminal.all():
        raise ValueError("terminals must leave at least one non-terminal cell")
    P = np.zeros((S, 4, S))
    for s in range(S):  # forward over cells
        if terminal[s]:
            P[s, :, s] = 1.0
            continue
        r, c = divmod(s, cols)
        dest = []
        for dr, dc in _GRID_MOVES:  # the four moves, in GRID_ACTIONS order
            rr, cc = r + dr, c + dc
            dest.append(rr * cols + cc if (0 <= rr < rows and 0 <= cc < cols) else s)
        for a in range(4):  # intended move, then the slip mixture
            P[s, a, dest[a]] += 1 - slip
            for b in range(4):
                P[s, a, dest[b]] += slip / 4
    R = np.where(terminal[:, None], 0.0, float(step_reward)) * np.ones((S, 4))
    mu0 = np.zeros(S)
    if start is None:
        mu0[~terminal] = 1.0
    else:
        for cell in start:
            i = index(cell, "start")
            if terminal[i]:
                raise ValueError(f"start cell {cell} is terminal")
            mu0[i] = 1.0
    mu0 /= mu0.sum()
    return TabularMDP(P, R, gamma, mu0, terminal, dtype=dtype, device=device)


def random_mdp(
    num_states: int,
    num_actions: int,
    *,
    generator: torch.Generator,
    gamma: float = 0.9,
    num_terminal: int = 0,
    reward_scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """A random MDP: each row P[s, a, :] ~ Dirichlet(1, …, 1), R[s, a] ~ N(0, reward_scale²).

    The last ``num_terminal`` states are terminal (absorbing, zero reward); μ₀ is a random
    distribution over the others. All randomness comes from ``generator`` (on its device);
    the tables are then moved to ``device`` (default: the generator's device).

    Args:
      num_states: S >= 1 (and > num_terminal).
      num_actions: A >= 1.
      generator: a ``torch.Generator`` (required: no global random state).
      gamma: discount γ ∈ [0, 1] (γ = 1 needs num_terminal >= 1).
      num_terminal: number of terminal states.
      reward_scale: standard deviation of the rewards (> 0).
    """
    S = _validate_count(num_states, "num_states", 1)
    A = _validate_count(num_actions, "num_actions", 1)
    K = _validate_count(num_terminal, "num_terminal", 0)
    if K >= S:
        raise ValueError(f"num_terminal must be < num_states, got {K} >= {S}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) or not reward_scale > 0:
        raise ValueError(f"reward_scale must be a number > 0, got {reward_scale!r}")
    gdev = generator.device
    device = gdev if device is None else torch.device(device)
    f64 = torch.float64
    # Dirichlet(1, …, 1) rows (uniform on the simplex) as normalized Exp(1) = -log U draws
    u = torch.rand(S, A, S, generator=generator, device=gdev, dtype=f64)
    w = -torch.log1p(-u)  # u ∈ [0, 1) so 1 - u ∈ (0, 1]: finite, and w = 0 only when u = 0
    w[..., 0] += 1e-300  # keep every row's sum positive
    P = w / w.sum(-1, keepdim=True)
    R = reward_scale * torch.randn(S, A, generator=generator, device=gdev, dtype=f64)
    mu = -torch.log1p(-torch.rand(S, generator=generator, device=gdev, dtype=f64)) + 1e-300
    terminal = torch.zeros(S, dtype=torch.bool, device=gdev)
    if K:
        terminal[S - K :] = True
        P[S - K :] = 0.0
        idx = torch.arange(S - K, S, device=gdev)
        P[idx, :, idx] = 1.0
        R[S - K :] = 0.0
        mu[S - K :] = 0.0
    mu0 = mu / mu.sum()
    return TabularMDP(P, R, gamma, mu0, terminal, dtype=dtype, device=device)
