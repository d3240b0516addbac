"""The discounted linear-quadratic regulator with a linear-Gaussian policy, solved exactly.

Dynamics, policy and cost (x ∈ ℝⁿ, u ∈ ℝᵐ, εₜ ~ N(0, Iₘ) independent of everything before)::

    xₜ₊₁ = A xₜ + B uₜ,        uₜ = −K xₜ + σ εₜ,        E[x₀ x₀ᵀ] = Σ₀   (x₀ ~ N(0, Σ₀) when sampled)
    C(K) = E Σₜ γᵗ (xₜᵀ Q xₜ + uₜᵀ R uₜ)                    (the noise's own cost included)

With A_K = A − BK, Q_K = Q + KᵀRK and the discounted state covariance Σ_K = Σₜ γᵗ E[xₜ xₜᵀ]::

    P_K = Q_K + γ A_Kᵀ P_K A_K                                     (value matrix)
    Σ_K = Σ₀ + γσ²/(1 − γ) · BBᵀ + γ A_K Σ_K A_Kᵀ                   (state covariance)
    C(K) = tr(Q_K Σ_K) + σ² tr R / (1 − γ)
         = tr(P_K Σ₀) + γσ²/(1 − γ) · tr(Bᵀ P_K B) + σ² tr R / (1 − γ)
    ∇C(K) = 2 ((R + γ Bᵀ P_K B) K − γ Bᵀ P_K A) Σ_K

Derivation (docs/lqr/index.md has it in full): E[uₜᵀRuₜ] = E[xₜᵀKᵀRKxₜ] + σ² tr R, and
Sₜ = E[xₜxₜᵀ] obeys Sₜ₊₁ = A_K Sₜ A_Kᵀ + σ² BBᵀ; summing γᵗ Sₜ gives the Σ_K equation (the
noise first reaches x₁, hence γσ²/(1 − γ), not σ²/(1 − γ)). Differentiating the P_K equation,
dP = E + γ A_Kᵀ dP A_K with E = dKᵀ(RK − γBᵀP_K A_K) + (·)ᵀ, so d tr(P_K W) = tr(E Σ_K) for
W = Σ₀ + γσ²/(1 − γ) BBᵀ, and RK − γBᵀP_K(A − BK) = (R + γBᵀP_K B)K − γBᵀP_K A. With γ = 1
and σ = 0 this is Fazel, Ge, Kakade & Mesbahi (ICML 2018), Lemma 1. With σ > 0 the cost is
finite only for γ < 1 (the noise's cost accrues every step), so σ > 0 requires γ < 1.

Finite horizon T (the target of sampled trajectories of T steps)::

    C_T(K) = E Σ_{t<T} γᵗ cₜ = Σ_{t<T} γᵗ (tr(Q_K Sₜ) + σ² tr R)
    V_t(x) = xᵀ P_t x + v_t,  P_T = 0, v_T = 0,  P_t = Q_K + γ A_Kᵀ P_{t+1} A_K,
             v_t = σ² tr R + γ (v_{t+1} + σ² tr(Bᵀ P_{t+1} B))
    ∇C_T(K) = 2 Σ_{t<T} γᵗ ((R + γ Bᵀ P_{t+1} B) K − γ Bᵀ P_{t+1} A) Sₜ

(the policy-gradient theorem per step: E_u[∇_K log π(u|x) Q_t(x, u)] = ∇_K E_u[Q_t(x, u)] at
fixed x = 2((R + γBᵀP_{t+1}B)K − γBᵀP_{t+1}A) x xᵀ).

Sources: Fazel, Ge, Kakade & Mesbahi, "Global Convergence of Policy Gradient Methods for the
Linear Quadratic Regulator" (ICML 2018), Lemma 1 (undiscounted, noiseless); Bertsekas, *Dynamic
Programming and Optimal Control* (4th ed., 2017), Vol. I §3.1 (LQR, Lyapunov/Riccati
recursions). The discounted, noisy form is derived here.

Checked by: tests/test_lqr.py (closed forms against the series and scipy to 1e-10, finite
differences, autograd through both Lyapunov solvers, the scalar closed form, bad input) and the
specs ``lqr_cost`` / ``lqr_gradient`` of :mod:`pgmath.specs.lqr` (tests/test_specs.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pgmath.lqr.lyapunov import solve_discrete_lyapunov
from pgmath.validation import validate_nonnegative, validate_unit_interval

__all__ = ["LQR", "LQRTrajectories"]


def _matrix(x: object, name: str, shape: tuple[int, ...] | None, dtype: torch.dtype,
            device: torch.device | None) -> torch.Tensor:
    """``x`` as a finite real 2-d tensor of ``dtype`` (of ``shape`` when given), ValueError naming ``name``."""
    if isinstance(x, torch.Tensor):
        if torch.is_complex(x) or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        t = x.to(dtype=dtype, device=device if device is not None else x.device)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a matrix of real numbers ({exc})") from None
        t = torch.as_tensor(arr, dtype=dtype, device=device)
    if t.dim() != 2 or (shape is not None and tuple(t.shape) != shape):
        want = "[rows, cols]" if shape is None else str(list(shape))
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return t


def _symmetric_psd(M: torch.Tensor, name: str, *, definite: bool = False) -> None:
    scale = max(1.0, float(M.abs().max()))
    tol = math.sqrt(float(torch.finfo(M.dtype).eps)) * scale
    if float((M - M.mT).abs().max()) > tol:
        raise ValueError(f"{name} must be symmetric")
    low = float(torch.linalg.eigvalsh(0.5 * (M + M.mT)).min())
    if (definite and low <= 0.0) or low < -tol:
        raise ValueError(f"{name} must be positive {'definite' if definite else 'semi-definite'}, "
                         f"smallest eigenvalue {low:.3g}")


@dataclass(frozen=True)
class LQRTrajectories:
    """N trajectories of T steps, time-major (``[T, N, …]``).

    Attributes:
      states: ``[T + 1, N, n]`` x₀ … x_T (x_T: the state after the last action).
      actions: ``[T, N, m]`` uₜ = −K xₜ + σ εₜ.
      noise: ``[T, N, m]`` εₜ (standard normal).
      costs: ``[T, N]`` cₜ = xₜᵀ Q xₜ + uₜᵀ R uₜ.
    """

    states: torch.Tensor
    actions: torch.Tensor
    noise: torch.Tensor
    costs: torch.Tensor

    @property
    def horizon(self) -> int:
        return int(self.costs.shape[0])

    @property
    def num_trajectories(self) -> int:
        return int(self.costs.shape[1])

    def discounted_costs(self, gamma: float) -> torch.Tensor:
        """``[N]`` Σ_{t<T} γᵗ cₜ of each trajectory."""
        gamma = validate_unit_interval(gamma, "gamma")
        w = gamma ** torch.arange(self.horizon, dtype=self.costs.dtype, device=self.costs.device)
        return (w[:, None] * self.costs).sum(0)


class LQR:
    """A discounted LQR with the linear-Gaussian policy u = −Kx + σε (see the module docstring).

    Args:
      A: ``[n, n]`` dynamics. B: ``[n, m]`` input matrix.
      Q: ``[n, n]`` state cost, symmetric positive semi-definite.
      R: ``[m, m]`` control cost, symmetric positive definite.
      Sigma0: ``[n, n]`` E[x₀x₀ᵀ], symmetric positive semi-definite.
      gamma: discount γ ∈ [0, 1]; must be < 1 when ``sigma > 0``.
      sigma: the policy's noise scale σ ≥ 0.
      dtype: of every matrix (default float64). device: default A's device (CPU for arrays).

    Raises:
      ValueError naming the argument: wrong shapes, NaN/inf, asymmetric or indefinite Q, R,
      Sigma0, γ outside [0, 1], σ < 0, σ > 0 with γ = 1.
    """

    def __init__(self, A: object, B: object, Q: object, R: object, Sigma0: object, *,
                 gamma: float = 1.0, sigma: float = 0.0, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        dtype = torch.float64 if dtype is None else dtype
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        if device is None and isinstance(A, torch.Tensor):
            device = A.device
        device = torch.device("cpu" if device is None else device)
        A = _matrix(A, "A", None, dtype, device)
        n = A.shape[0]
        if A.shape[1] != n or n == 0:
            raise ValueError(f"A must be square [n, n] with n >= 1, got {tuple(A.shape)}")
        B = _matrix(B, "B", None, dtype, device)
        if B.shape[0] != n or B.shape[1] == 0:
            raise ValueError(f"B must have shape [n, m] = [{n}, m >= 1], got {tuple(B.shape)}")
        m = B.shape[1]
        Q = _matrix(Q, "Q", (n, n), dtype, device)
        R = _matrix(R, "R", (m, m), dtype, device)
        Sigma0 = _matrix(Sigma0, "Sigma0", (n, n), dtype, device)
        _symmetric_psd(Q, "Q")
        _symmetric_psd(R, "R", definite=True)
        _symmetric_psd(Sigma0, "Sigma0")
        gamma = validate_unit_interval(gamma, "gamma")
        sigma = validate_nonnegative(sigma, "sigma")
        if sigma > 0 and gamma >= 1.0:
            raise ValueError("gamma must be < 1 when sigma > 0: the noise's cost σ² tr R accrues "
                             "every step, so the undiscounted cost is infinite")
        self.A, self.B, self.Q, self.R, self.Sigma0 = A, B, 0.5 * (Q + Q.mT), 0.5 * (R + R.mT), 0.5 * (Sigma0 + Sigma0.mT)
        self.gamma, self.sigma = gamma, sigma
        self.state_dim, self.action_dim = n, m
        self.dtype, self.device = dtype, device

    def __repr__(self) -> str:
        return (f"LQR(state_dim={self.state_dim}, action_dim={self.action_dim}, gamma={self.gamma}, "
                f"sigma={self.sigma}, dtype={self.dtype}, device={self.device})")

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> LQR:
        """The same system in ``dtype`` on ``device``."""
        return LQR(self.A, self.B, self.Q, self.R, self.Sigma0, gamma=self.gamma, sigma=self.sigma,
                   dtype=dtype or self.dtype, device=device or self.device)

    def replace(self, *, gamma: float | None = None, sigma: float | None = None) -> LQR:
        """The same matrices with another γ and/or σ."""
        return LQR(self.A, self.B, self.Q, self.R, self.Sigma0,
                   gamma=self.gamma if gamma is None else gamma,
                   sigma=self.sigma if sigma is None else sigma, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ the gain
    def spectral_radius(self, K: torch.Tensor) -> float:
        """ρ(√γ (A − BK)): the closed loop's discounted spectral radius (< 1: C(K) is finite)."""
        K = self.validate_gain_shape(K)
        M = math.sqrt(self.gamma) * (self.A - self.B @ K.detach())
        return float(torch.linalg.eigvals(M).abs().max())

    def validate_gain_shape(self, K: object, name: str = "K") -> torch.Tensor:
        """``K [m, n]`` cast to the system's dtype after checking its type, shape and finiteness (no
        stability check: a finite horizon is finite for any K; see :meth:`validate_gain`)."""
        if not isinstance(K, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor [m, n], got {type(K).__name__}")
        if not torch.is_floating_point(K):
            raise ValueError(f"{name} must have a floating-point dtype, got {K.dtype}")
        if tuple(K.shape) != (self.action_dim, self.state_dim):
            raise ValueError(f"{name} must have shape [m, n] = [{self.action_dim}, {self.state_dim}], "
                             f"got {tuple(K.shape)}")
        if not bool(torch.isfinite(K.detach()).all()):
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")
        return K.to(dtype=self.dtype, device=self.device)

    def validate_gain(self, K: object, name: str = "K") -> torch.Tensor:
        """``K [m, n]`` cast to the system's dtype, after checking its shape, finiteness and that
        it stabilises the discounted closed loop: ρ(√γ (A − BK)) < 1 (else C(K) is infinite)."""
        K = self.validate_gain_shape(K, name)
        rho = self.spectral_radius(K)
        if not rho < 1.0 - 1e-9:
            raise ValueError(f"{name} does not stabilise the system: the spectral radius of "
                             f"√γ(A − BK) is {rho:.6g} >= 1, so the cost C(K) is infinite")
        return K

    # ------------------------------------------------------------------ exact quantities
    @property
    def noise_cost(self) -> float:
        """σ² tr R / (1 − γ): the discounted cost of the policy noise itself (0 when σ = 0)."""
        if self.sigma == 0.0:
            return 0.0
        return self.sigma**2 * float(torch.trace(self.R)) / (1.0 - self.gamma)

    def initial_covariance(self) -> torch.Tensor:
        """W = Σ₀ + γσ²/(1 − γ) BBᵀ: the source term of the Σ_K equation."""
        if self.sigma == 0.0:
            return self.Sigma0
        return self.Sigma0 + (self.gamma * self.sigma**2 / (1.0 - self.gamma)) * (self.B @ self.B.mT)

    def value_matrix(self, K: torch.Tensor, *, method: str = "kronecker") -> torch.Tensor:
        """P_K ``[n, n]``: P_K = Q + KᵀRK + γ (A − BK)ᵀ P_K (A − BK)."""
        K = self.validate_gain(K)
        M = math.sqrt(self.gamma) * (self.A - self.B @ K)
        return solve_discrete_lyapunov(M.mT, self.Q + K.mT @ self.R @ K, method=method)

    def state_covariance(self, K: torch.Tensor, *, method: str = "kronecker") -> torch.Tensor:
        """Σ_K = Σₜ γᵗ E[xₜxₜᵀ] ``[n, n]``: Σ_K = Σ₀ + γσ²/(1 − γ) BBᵀ + γ (A − BK) Σ_K (A − BK)ᵀ."""
        K = self.validate_gain(K)
        M = math.sqrt(self.gamma) * (self.A - self.B @ K)
        return solve_discrete_lyapunov(M, self.initial_covariance(), method=method)

    def cost(self, K: torch.Tensor, *, method: str = "kronecker") -> torch.Tensor:
        """C(K) = tr((Q + KᵀRK) Σ_K) + σ² tr R / (1 − γ), a 0-d tensor (differentiable in K).

        Args:
          K: ``[m, n]`` gain (u = −Kx + σε) with ρ(√γ (A − BK)) < 1.
          method: the Lyapunov solver, ``"kronecker"`` or ``"doubling"``.
        """
        K = self.validate_gain(K)
        S = self.state_covariance(K, method=method)
        return torch.trace((self.Q + K.mT @ self.R @ K) @ S) + self.noise_cost

    def gradient(self, K: torch.Tensor, *, method: str = "kronecker") -> torch.Tensor:
        """∇C(K) = 2 ((R + γ BᵀP_K B) K − γ BᵀP_K A) Σ_K, ``[m, n]`` (of C, not of −C).

        Args:
          K: ``[m, n]`` gain with ρ(√γ (A − BK)) < 1.
          method: the Lyapunov solver, ``"kronecker"`` or ``"doubling"``.
        """
        K = self.validate_gain(K)
        P = self.value_matrix(K, method=method)
        S = self.state_covariance(K, method=method)
        g = self.gamma
        return 2.0 * ((self.R + g * self.B.mT @ P @ self.B) @ K - g * self.B.mT @ P @ self.A) @ S

    def value_offset(self, K: torch.Tensor) -> float:
        """v with V_K(x) = xᵀ P_K x + v: v = σ² (tr R + γ tr(BᵀP_K B)) / (1 − γ) (0 when σ = 0)."""
        if self.sigma == 0.0:
            return 0.0
        P = self.value_matrix(K)
        return self.sigma**2 * float(torch.trace(self.R) + self.gamma * torch.trace(self.B.mT @ P @ self.B)) / (1.0 - self.gamma)

    # ------------------------------------------------------------------ finite horizon
    def _horizon(self, horizon: object) -> int:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        return int(horizon)

    def state_moments(self, K: torch.Tensor, horizon: int) -> torch.Tensor:
        """Sₜ = E[xₜxₜᵀ] for t = 0 … T, ``[T + 1, n, n]``: S₀ = Σ₀, Sₜ₊₁ = A_K Sₜ A_Kᵀ + σ² BBᵀ."""
        T = self._horizon(horizon)
        K = self.validate_gain_shape(K)
        AK = self.A - self.B @ K
        noise = self.sigma**2 * (self.B @ self.B.mT)
        S = [self.Sigma0]
        for _ in range(T):  # forward in time
            S.append(AK @ S[-1] @ AK.mT + noise)
        return torch.stack(S)

    def finite_horizon_values(self, K: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(P ``[T + 1, n, n]``, v ``[T + 1]``) with V_t(x) = xᵀPₜx + vₜ = E[Σ_{t≤s<T} γ^(s−t) c_s | xₜ = x]."""
        T = self._horizon(horizon)
        K = self.validate_gain_shape(K)
        AK = self.A - self.B @ K
        QK = self.Q + K.mT @ self.R @ K
        noise_u = self.sigma**2 * torch.trace(self.R)
        P = [torch.zeros_like(self.A)]
        v = [torch.zeros((), dtype=self.dtype, device=self.device)]
        for _ in range(T):  # backward in time: t = T − 1, …, 0
            Pn, vn = P[-1], v[-1]
            P.append(QK + self.gamma * AK.mT @ Pn @ AK)
            v.append(noise_u + self.gamma * (vn + self.sigma**2 * torch.trace(self.B.mT @ Pn @ self.B)))
        return torch.stack(P[::-1]), torch.stack(v[::-1])

    def finite_horizon_cost(self, K: torch.Tensor, horizon: int) -> torch.Tensor:
        """C_T(K) = Σ_{t<T} γᵗ (tr((Q + KᵀRK) Sₜ) + σ² tr R), a 0-d tensor (differentiable in K)."""
        T = self._horizon(horizon)
        K = self.validate_gain_shape(K)
        S = self.state_moments(K, T)[:T]
        w = self.gamma ** torch.arange(T, dtype=self.dtype, device=self.device)
        QK = self.Q + K.mT @ self.R @ K
        per_step = torch.einsum("ij,tji->t", QK, S) + self.sigma**2 * torch.trace(self.R)
        return (w * per_step).sum()

    def finite_horizon_gradient(self, K: torch.Tensor, horizon: int) -> torch.Tensor:
        """∇C_T(K) = 2 Σ_{t<T} γᵗ ((R + γBᵀP_{t+1}B)K − γBᵀP_{t+1}A) Sₜ, ``[m, n]``."""
        T = self._horizon(horizon)
        K = self.validate_gain_shape(K)
        S = self.state_moments(K, T)[:T]
        P, _ = self.finite_horizon_values(K, T)
        g = self.gamma
        w = g ** torch.arange(T, dtype=self.dtype, device=self.device)
        E = (self.R + g * self.B.mT @ P[1:] @ self.B) @ K - g * self.B.mT @ P[1:] @ self.A  # [T, m, n]
        return 2.0 * torch.einsum("t,tij,tjk->ik", w, E, S)

    # ------------------------------------------------------------------ sampling
    def sample(self, K: torch.Tensor, n: int, horizon: int, *, generator: torch.Generator) -> LQRTrajectories:
        """N = ``n`` trajectories of ``horizon`` steps under u = −Kx + σε, vectorised over N.

        x₀ ~ N(0, Σ₀) (so E[x₀x₀ᵀ] = Σ₀), εₜ ~ N(0, Iₘ) from ``generator`` only (on the system's
        device). K need not be stable here (a finite horizon is always finite).

        Returns:
          :class:`LQRTrajectories` (time-major).
        """
        if not isinstance(generator, torch.Generator):
            raise ValueError("generator must be a torch.Generator (explicit seeding, no global RNG)")
        T = self._horizon(horizon)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        K = self.validate_gain_shape(K).detach()
        evals, evecs = torch.linalg.eigh(self.Sigma0)
        L = evecs * evals.clamp_min(0.0).sqrt()  # L Lᵀ = Σ₀
        kw = {"generator": generator, "dtype": self.dtype, "device": self.device}
        x = torch.randn(n, self.state_dim, **kw) @ L.mT
        eps = torch.randn(T, n, self.action_dim, **kw)
        states, actions, costs = [x], [], []
        for t in range(T):  # forward in time, all trajectories at once
            u = -x @ K.mT + self.sigma * eps[t]
            costs.append(((x @ self.Q) * x).sum(-1) + ((u @ self.R) * u).sum(-1))
            x = x @ self.A.mT + u @ self.B.mT
            states.append(x)
            actions.append(u)
        return LQRTrajectories(torch.stack(states), torch.stack(actions), eps, torch.stack(costs))
