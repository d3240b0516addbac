"""Exact tabular MDPs: policy evaluation, occupancies, the objective and its exact gradient.

A finite MDP (S states, A actions) with expected rewards and a policy π given as a table
``pi[s, a] = π(a|s)``. Everything is solved exactly with linear solves (never an explicit
inverse), over the non-terminal states only, so γ = 1 works for episodic tasks::

    P_π[s, s'] = Σₐ π(a|s) P[s, a, s']          r_π[s] = Σₐ π(a|s) R[s, a]
    V = r_π + γ P_π V           ⇒ (I - γ P_π) V = r_π              (Bellman equation)
    Q[s, a] = R[s, a] + γ Σₛ' P[s, a, s'] V[s']                      A = Q - V
    d = μ₀ + γ P_πᵀ d           ⇒ (I - γ P_π)ᵀ d = μ₀               d(s) = Σₜ γᵗ Pr(sₜ = s)
    J = μ₀ · V = Σₛ d(s) r_π(s)
    ∇_θ J = Σₛ d(s) Σₐ ∇_θ π(a|s) Q(s, a)                             (policy gradient theorem)
          = d(s) π(a|s) A(s, a)  for tabular softmax logits θ[s, a]

Terminal states are absorbing and pay nothing, so V = Q = 0 there and d = 0 there (the episode
is over). The exact gradient is computed two independent ways: ``method="theorem"`` (the line
above) and ``method="autograd"`` (reverse-mode differentiation through the linear solve of J).

Sources: Sutton & Barto, *Reinforcement Learning: An Introduction*, 2nd ed. (2018), §3.5
(Bellman equation), §4.1 (iterative policy evaluation; Figure 4.1), §13.2 (policy gradient
theorem; Example 13.1); Sutton, McAllester, Singh & Mansour, "Policy Gradient Methods for
Reinforcement Learning with Function Approximation" (NeurIPS 1999), Theorem 1; Agarwal, Kakade,
Lee & Mahajan, "On the Theory of Policy Gradient Methods" (JMLR 2021), Lemma C.1 (softmax form).

Checked by: tests/test_mdp_tabular.py (theorem == autograd == finite differences on random MDPs,
hypothesis; Bellman residuals; occupancy identities; γ = 1 and singular evaluation),
tests/test_mdp_canonical.py (Sutton & Barto Example 13.1 and Figure 4.1), and the specs of
:mod:`pgmath.specs.mdp` (state values, action values, occupancy, exact gradient: properties and
wrong variants in tests/test_specs.py, rows of ``pgmath verify --area mdp``). Derivations:
docs/mdp/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pgmath.validation import as_flags, validate_float_tensor, validate_unit_interval

__all__ = ["PolicyFn", "TabularMDP", "softmax"]

#: A parameterized policy: ``params -> pi [S, A]`` (``params`` a tensor or a tuple of tensors).
PolicyFn = Callable[..., torch.Tensor]
Params = torch.Tensor | Sequence[torch.Tensor]


def softmax(x: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis, exp(x - max x) / Σ exp(x - max x), from elementwise ops.

    Same values as ``torch.softmax``; written out because torch's CPU softmax kernel dispatches
    even tiny tables to its thread pool, which costs milliseconds per call on a busy machine.
    """
    e = torch.exp(x - x.detach().amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def _tolerance(dtype: torch.dtype) -> float:
    """Slack for "sums to one" / "lies in [0, 1]" checks: √eps of the dtype (1.5e-8 in float64)."""
    return float(torch.finfo(dtype).eps) ** 0.5


def _as_tensor(x: object, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Convert array-likes to a float tensor of ``dtype`` on ``device`` (ValueError naming ``name``)."""
    if isinstance(x, torch.Tensor):
        if torch.is_complex(x) or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.to(dtype=dtype, device=device)
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a tensor or an array of real numbers ({exc})") from None
    return torch.as_tensor(arr, dtype=dtype, device=device)


def _validate_distribution_rows(x: torch.Tensor, name: str, what: str, dtype: torch.dtype | None = None) -> None:
    """Raise unless every entry of ``x`` lies in [0, 1] and its last axis sums to 1.

    The slack is that of ``dtype`` (default ``x.dtype``): the precision the caller supplied.
    """
    tol = _tolerance(dtype or x.dtype)
    if bool(((x < -tol) | (x > 1 + tol)).any()):
        raise ValueError(f"{name} must hold probabilities in [0, 1] ({what})")
    sums = x.sum(-1)
    worst = float((sums - 1).abs().max())
    if worst > tol * max(1, x.shape[-1]) ** 0.5:
        raise ValueError(f"{name} must sum to 1 over its last axis ({what}); worst |sum - 1| = {worst:.3g}")


class TabularMDP:
    """A finite MDP with expected rewards, solved exactly.

    Args:
      P: ``[S, A, S]`` transition probabilities, ``P[s, a, s'] = Pr(sₜ₊₁ = s' | sₜ = s, aₜ = a)``;
        every row ``P[s, a, :]`` sums to 1.
      R: ``[S, A]`` expected reward ``R[s, a] = E[rₜ | sₜ = s, aₜ = a]``.
      gamma: discount γ ∈ [0, 1]. γ = 1 needs terminal states that the policy reaches.
      mu0: ``[S]`` initial-state distribution μ₀; no mass on terminal states (an episode cannot
        start finished).
      terminal: optional bool ``[S]`` (or 0/1); terminal states must be absorbing
        (``P[s, a, s] = 1``) and pay nothing (``R[s, a] = 0``). Default: none.
      dtype: floating dtype of every table (default float64).
      device: device of every table (default: ``P``'s device when a tensor, else CPU).

    Attributes:
      P, R, gamma (float), mu0, terminal (bool ``[S]``), num_states, num_actions, dtype, device.

    Raises:
      ValueError naming the argument: wrong shapes, NaN/inf, probabilities outside [0, 1],
      rows that do not sum to 1, γ outside [0, 1], terminal states that are not absorbing
      zero-reward states, μ₀ mass on terminal states.
    """

    def __init__(
        self,
        P: object,
        R: object,
        gamma: float,
        mu0: object,
        terminal: object | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        dtype = torch.float64 if dtype is None else dtype
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        if device is None:
            device = P.device if isinstance(P, torch.Tensor) else torch.device("cpu")
        device = torch.device(device)

        P = _as_tensor(P, "P", dtype, device)
        if P.dim() != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise ValueError(f"P must have shape [S, A, S] with S, A >= 1, got {tuple(P.shape)}")
        S, A = P.shape[0], P.shape[1]
        validate_float_tensor(P, "P")
        _validate_distribution_rows(P, "P", "P[s, a, :] is the distribution of the next state")

        R = _as_tensor(R, "R", dtype, device)
        if tuple(R.shape) != (S, A):
            raise ValueError(f"R must have shape [S, A] = {(S, A)} to match P, got {tuple(R.shape)}")
        validate_float_tensor(R, "R")

        gamma = validate_unit_interval(gamma, "gamma")

        mu0 = _as_tensor(mu0, "mu0", dtype, device)
        if tuple(mu0.shape) != (S,):
            raise ValueError(f"mu0 must have shape [S] = ({S},) to match P, got {tuple(mu0.shape)}")
        validate_float_tensor(mu0, "mu0")
        _validate_distribution_rows(mu0, "mu0", "the initial-state distribution")

        if terminal is None:
            terminal = torch.zeros(S, dtype=torch.bool, device=device)
        else:
            if not isinstance(terminal, torch.Tensor):
                terminal = torch.as_tensor(np.asarray(terminal))
            terminal = as_flags(terminal, "terminal").to(device)
            if tuple(terminal.shape) != (S,):
                raise ValueError(f"terminal must have shape [S] = ({S},), got {tuple(terminal.shape)}")
        if bool(terminal.any()):
            tol = _tolerance(dtype)
            idx = torch.nonzero(terminal).squeeze(1)
            stay = P[idx, :, idx]  # [K, A]: P[s, a, s] for terminal s
            if bool(((stay - 1).abs() > tol).any()):
                raise ValueError("terminal states must be absorbing: P[s, a, s] = 1 for terminal s")
            if bool((R[idx] != 0).any()):
                raise ValueError("terminal states must pay no reward: R[s, a] = 0 for terminal s")
            if bool((mu0[idx] > 0).any()):
                raise ValueError("mu0 must put zero probability on terminal states")

        self.P = P
        self.R = R
        self.gamma = gamma
        self.mu0 = mu0
        self.terminal = terminal
        self.num_states = S
        self.num_actions = A
        self.dtype = dtype
        self.device = device
        self._nonterminal = torch.nonzero(~terminal).squeeze(1)

    def __repr__(self) -> str:
        return (
            f"TabularMDP(num_states={self.num_states}, num_actions={self.num_actions}, "
            f"gamma={self.gamma}, num_terminal={int(self.terminal.sum())}, dtype={self.dtype}, "
            f"device={self.device})"
        )

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> TabularMDP:
        """The same MDP with tables in ``dtype`` on ``device``."""
        return TabularMDP(
            self.P, self.R, self.gamma, self.mu0, self.terminal,
            dtype=dtype or self.dtype, device=device or self.device,
        )

    def with_gamma(self, gamma: float) -> TabularMDP:
        """The same dynamics and rewards with a different discount."""
        return TabularMDP(self.P, self.R, gamma, self.mu0, self.terminal, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ policies
    def policy(self, logits: torch.Tensor) -> torch.Tensor:
        """π(a|s) = exp(θ[s, a]) / Σ_b exp(θ[s, b]): the tabular softmax policy ``[S, A]``.

        Args:
          logits: ``[S, A]`` floating tensor θ (finite), on the MDP's device.
        """
        self._validate_table(logits, "logits")
        return softmax(logits.to(self.dtype))

    def validate_policy(self, pi: torch.Tensor, name: str = "pi") -> torch.Tensor:
        """Validate a policy table ``[S, A]`` (rows are distributions) and cast it to the MDP dtype."""
        self._validate_table(pi, name)
        # rows checked in the precision the caller supplied, before the cast to the MDP's dtype
        # (a float64 π cast to a bfloat16 MDP sums to 1 only within bfloat16's rounding)
        _validate_distribution_rows(pi.detach(), name, "pi[s, :] is the action distribution in state s")
        return pi.to(self.dtype)

    def _validate_table(self, x: object, name: str) -> None:
        validate_float_tensor(x, name)
        assert isinstance(x, torch.Tensor)
        if tuple(x.shape) != (self.num_states, self.num_actions):
            raise ValueError(
                f"{name} must have shape [S, A] = {(self.num_states, self.num_actions)}, "
                f"got {tuple(x.shape)}"
            )
        if x.device != self.device:
            raise ValueError(f"{name} is on {x.device} but the MDP is on {self.device}")

    # ------------------------------------------------------------------ policy evaluation
    def transition_matrix(self, pi: torch.Tensor) -> torch.Tensor:
        """P_π[s, s'] = Σₐ π(a|s) P[s, a, s'], ``[S, S]``."""
        pi = self.validate_policy(pi)
        return torch.einsum("sa,sat->st", pi, self.P)

    def expected_rewards(self, pi: torch.Tensor) -> torch.Tensor:
        """r_π[s] = Σₐ π(a|s) R[s, a], ``[S]``."""
        pi = self.validate_policy(pi)
        return (pi * self.R).sum(-1)

    def _system(self, pi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """M = I - γ P_π restricted to non-terminal states, and r_π there (pi already checked).

        With γ = 1 the system is singular exactly when some non-terminal state cannot reach a
        terminal state under π; that is detected from the support of P_π (reachability), not
        from a round-off-sensitive determinant, and reported as a ValueError.
        """
        n = self._nonterminal
        P_pi = torch.einsum("sa,sat->st", pi, self.P)
        r_pi = (pi * self.R).sum(-1)
        P_nn = P_pi[n][:, n]
        if self.gamma == 1.0:
            self._validate_terminates(P_pi.detach())
        eye = torch.eye(n.numel(), dtype=self.dtype, device=self.device)
        return eye - self.gamma * P_nn, r_pi[n]

    def _validate_terminates(self, P_pi: torch.Tensor) -> None:
        """Raise unless every non-terminal state reaches a terminal state with probability > 0."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import breadth_first_order

        term = self.terminal.cpu().numpy()
        if not term.any():
            raise ValueError(
                "the policy's evaluation is singular: gamma = 1 but the MDP has no terminal "
                "states, so returns are unbounded; use gamma < 1 or add terminal states"
            )
        S = self.num_states
        support = (P_pi > 0).cpu().numpy()
        # reversed graph s' -> s for every edge s -> s', plus a super-source S -> every terminal
        src, dst = np.nonzero(support)
        tidx = np.nonzero(term)[0]
        rows = np.concatenate([dst, np.full(tidx.size, S)])
        cols = np.concatenate([src, tidx])
        g = csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(S + 1, S + 1))
        reached = np.zeros(S + 1, dtype=bool)
        reached[breadth_first_order(g, S, directed=True, return_predecessors=False)] = True
        stuck = np.nonzero(~reached[:S] & ~term)[0]
        if stuck.size:
            shown = ", ".join(str(int(s)) for s in stuck[:10]) + (", ..." if stuck.size > 10 else "")
            raise ValueError(
                "the policy's evaluation is singular: gamma = 1 but from state(s) "
                f"[{shown}] the policy never reaches a terminal state, so I - P_pi is singular "
                "there; use gamma < 1 or a policy that terminates"
            )

    def _solve(self, M: torch.Tensor, b: torch.Tensor, *, transpose: bool = False) -> torch.Tensor:
        try:
            x = torch.linalg.solve(M.mT if transpose else M, b)
        except RuntimeError as exc:  # torch.linalg.LinAlgError subclasses RuntimeError
            raise ValueError(f"the policy's evaluation is singular: {exc}") from None
        _validate_solution(x)
        return x

    def _scatter(self, x_n: torch.Tensor) -> torch.Tensor:
        """Embed values on non-terminal states into ``[S]`` (zero on terminal states)."""
        out = torch.zeros(self.num_states, dtype=x_n.dtype, device=x_n.device)
        return out.index_put((self._nonterminal,), x_n)

    def state_values(self, pi: torch.Tensor) -> torch.Tensor:
        """V^π ``[S]``: the solution of (I - γ P_π) V = r_π on non-terminal states, 0 on terminal ones.

        Args:
          pi: ``[S, A]`` policy table π(a|s) (rows sum to 1). Differentiable.

        Raises:
          ValueError if γ = 1 and π never terminates from some state (singular evaluation).
        """
        pi = self.validate_policy(pi)
        M, r = self._system(pi)
        return self._scatter(self._solve(M, r))

    def action_values(self, pi: torch.Tensor) -> torch.Tensor:
        """Q^π[s, a] = R[s, a] + γ Σₛ' P[s, a, s'] V^π(s'), ``[S, A]`` (0 on terminal states)."""
        V = self.state_values(pi)
        return self.R + self.gamma * torch.einsum("sat,t->sa", self.P, V)

    def advantages(self, pi: torch.Tensor) -> torch.Tensor:
        """A^π[s, a] = Q^π(s, a) - V^π(s), ``[S, A]``; Σₐ π(a|s) A(s, a) = 0."""
        V = self.state_values(pi)
        Q = self.R + self.gamma * torch.einsum("sat,t->sa", self.P, V)
        return Q - V[:, None]

    def discounted_occupancy(self, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """d^π(s) = Σₜ γᵗ Pr(sₜ = s | s₀ ~ μ₀, π), ``[S]``: solves (I - γ P_π)ᵀ d = μ₀.

        Non-terminal states only (d = 0 on terminal states: the episode has ended).
        Unnormalized, Σₛ d(s) is the expected discounted episode length (1/(1-γ) without
        terminal states) and J = Σₛ d(s) r_π(s). ``normalized=True`` divides by that sum, giving
        a probability distribution over states.
        """
        pi = self.validate_policy(pi)
        M, _ = self._system(pi)
        d = self._scatter(self._solve(M, self.mu0[self._nonterminal], transpose=True))
        return d / d.sum() if normalized else d

    def state_action_occupancy(self, pi: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """d^π(s, a) = d^π(s) π(a|s) = Σₜ γᵗ Pr(sₜ = s, aₜ = a), ``[S, A]``."""
        pi = self.validate_policy(pi)
        d = self.discounted_occupancy(pi, normalized=normalized)
        return d[:, None] * pi

    # ------------------------------------------------------------------ objective and gradient
    def _resolve_policy(self, logits_or_fn: object, params: Params | None) -> torch.Tensor:
        if callable(logits_or_fn) and not isinstance(logits_or_fn, torch.Tensor):
            if params is None:
                raise ValueError("params must be given when the policy is a callable theta -> pi")
            return self.validate_policy(_call(logits_or_fn, params), "policy_fn(params)")
        if params is not None:
            raise ValueError("params must be None when logits (a tensor) are given")
        return self.policy(logits_or_fn)  # type: ignore[arg-type]

    def objective(self, logits_or_fn: torch.Tensor | PolicyFn, params: Params | None = None) -> torch.Tensor:
        """J(θ) = μ₀ · V^{π_θ} (a 0-dim tensor, differentiable w.r.t. logits / params).

        Args:
          logits_or_fn: ``[S, A]`` logits of the tabular softmax policy, or a callable
            ``policy_fn(params) -> pi [S, A]`` (e.g. :class:`pgmath.mdp.LinearSoftmaxPolicy`).
          params: the callable's parameters (a tensor or a tuple of tensors); None for logits.
        """
        pi = self._resolve_policy(logits_or_fn, params)
        return self.mu0 @ self.state_values(pi)

    def exact_policy_gradient(
        self,
        logits_or_fn: torch.Tensor | PolicyFn,
        params: Params | None = None,
        *,
        method: str = "theorem",
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """∇_θ J(θ), exactly, by one of two independent methods.

        ``method="theorem"`` (policy gradient theorem, Sutton et al. 1999, Thm. 1)::

            ∇_θ J = Σₛ d(s) Σₐ ∇_θ π_θ(a|s) Q(s, a)
            tabular softmax logits:  ∂J/∂θ[s, a] = d(s) π(a|s) A(s, a)

        with d the unnormalized discounted occupancy; for a callable the inner ∇_θ π is taken by
        autograd of the surrogate Σₛ Σₐ d(s) π_θ(a|s) Q(s, a) with d and Q held fixed.

        ``method="autograd"``: reverse-mode autograd of J = μ₀ · solve(I - γ P_π, r_π).

        Args:
          logits_or_fn: ``[S, A]`` logits, or a callable ``policy_fn(params) -> pi [S, A]``.
          params: the callable's parameters (tensor or tuple of tensors), None for logits.
          method: "theorem" or "autograd".

        Returns:
          ``[S, A]`` for logits; for a callable, a tensor shaped like ``params`` (or a tuple
          of such when ``params`` is a tuple). Detached.
        """
        if method not in ("theorem", "autograd"):
            raise ValueError(f"method must be 'theorem' or 'autograd', got {method!r}")
        is_fn = callable(logits_or_fn) and not isinstance(logits_or_fn, torch.Tensor)
        if is_fn:
            if params is None:
                raise ValueError("params must be given when the policy is a callable theta -> pi")
            single = isinstance(params, torch.Tensor)
            leaves = (params,) if single else tuple(params)  # type: ignore[arg-type]
            for i, p in enumerate(leaves):
                validate_float_tensor(p, "params" if single else f"params[{i}]")
            leaves = tuple(p.detach().clone().requires_grad_(True) for p in leaves)
            arg = leaves[0] if single else leaves
            with torch.enable_grad():
                pi = self.validate_policy(_call(logits_or_fn, arg), "policy_fn(params)")
                if method == "autograd":
                    out = self.mu0 @ self.state_values(pi)
                else:
                    pd = pi.detach()
                    Q = self.action_values(pd)
                    d = self.discounted_occupancy(pd)
                    out = (d[:, None] * pi * Q).sum()
                grads = torch.autograd.grad(out, leaves, allow_unused=True)
            grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads))
            return grads[0] if single else grads
        if params is not None:
            raise ValueError("params must be None when logits (a tensor) are given")
        self._validate_table(logits_or_fn, "logits")
        logits = logits_or_fn.detach().to(self.dtype)  # type: ignore[union-attr]
        if method == "autograd":
            with torch.enable_grad():
                theta = logits.clone().requires_grad_(True)
                J = self.mu0 @ self.state_values(softmax(theta))
                (g,) = torch.autograd.grad(J, theta)
            return g
        return self._softmax_theorem_gradient(softmax(logits))

    def _softmax_theorem_gradient(self, pi: torch.Tensor) -> torch.Tensor:
        """d(s) π(a|s) A(s, a) with one LU factorization shared by V and d."""
        M, r = self._system(pi)
        try:
            LU, piv = torch.linalg.lu_factor(M)
        except RuntimeError as exc:
            raise ValueError(f"the policy's evaluation is singular: {exc}") from None
        n = self._nonterminal
        V_n = torch.linalg.lu_solve(LU, piv, r[:, None]).squeeze(1)
        d_n = torch.linalg.lu_solve(LU, piv, self.mu0[n][:, None], adjoint=True).squeeze(1)
        _validate_solution(V_n)
        _validate_solution(d_n)
        V, d = self._scatter(V_n), self._scatter(d_n)
        Q = self.R + self.gamma * torch.einsum("sat,t->sa", self.P, V)
        return d[:, None] * pi * (Q - V[:, None])


def _validate_solution(x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(
            "the policy's evaluation is numerically singular (non-finite values): with gamma = 1 "
            "the policy almost never terminates; use gamma < 1 or a policy that terminates"
        )


def _call(fn: PolicyFn, params: Params) -> torch.Tensor:
    pi = fn(params)
    if not isinstance(pi, torch.Tensor):
        raise ValueError(f"policy_fn(params) must return a tensor [S, A], got {type(pi).__name__}")
    return pi
