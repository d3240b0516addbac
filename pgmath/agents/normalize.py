"""Observation normalisation and reward scaling with running statistics.

Running moments (Chan, Golub & LeVeque, 1979, the pairwise update): merging a batch of k samples
with mean m_b and population variance v_b into running (m, v, n):

    n' = n + k,    δ = m_b − m,    m' = m + δ k / n',
    v' = (v n + v_b k + δ² n k / n') / n'

This is the update of OpenAI baselines' ``RunningMeanStd`` (also Stable-Baselines3's
``VecNormalize`` and gymnasium's ``NormalizeObservation``), with the same initial count 1e-4.

* Observations: ô = clip((o − m) / √(v + ε), −c, c).
* Rewards (PPO's "reward scaling", Engstrom et al., 2020, §3): rₜ / √(Var[R] + ε), clipped, where
  R is the running discounted return Rₜ = γ Rₜ₋₁ + rₜ, reset to 0 at each episode end. The
  reward is divided by the standard deviation only (never shifted).

pgmath's agents freeze the statistics during a rollout and update them with the whole rollout
afterwards (all ranks' data in a distributed run), so that the policy sees one fixed input
transformation per rollout, the stored normalised observations stay consistent with the stored
log-probabilities, and a distributed run keeps identical statistics on every rank.

Checked by: ``tests/test_agents_units.py::test_running_mean_std_*`` (the merged moments equal
the moments of the concatenated data in float64).
"""

from __future__ import annotations

import torch

__all__ = ["ObsNormalizer", "RewardScaler", "RunningMeanStd"]


class RunningMeanStd:
    """Running mean and population variance of a stream of ``[k, *shape]`` batches (float64)."""

    def __init__(self, shape: tuple[int, ...] = (), *, device: torch.device | str = "cpu",
                 initial_count: float = 1e-4) -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = float(initial_count)

    def update(self, x: torch.Tensor) -> None:
        """Merge the batch ``x`` (``[k, *shape]``, k >= 1) into the running moments."""
        if x.dim() != self.mean.dim() + 1 or tuple(x.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"x must have shape [k, *{tuple(self.mean.shape)}], got {tuple(x.shape)}")
        k = x.shape[0]
        if k == 0:
            raise ValueError("x is empty")
        x = x.to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or inf")
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        n = self.count
        tot = n + k
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (k / tot)
        self.var = (self.var * n + b_var * k + delta.square() * (n * k / tot)) / tot
        self.count = tot

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"].to(self.mean.device, torch.float64).clone()
        self.var = state["var"].to(self.var.device, torch.float64).clone()
        self.count = float(state["count"])


class ObsNormalizer:
    """ô = clip((o − m) / √(v + ε), −c, c) with running (m, v)."""

    def __init__(self, shape: tuple[int, ...], *, clip: float = 10.0, eps: float = 1e-8,
                 device: torch.device | str = "cpu") -> None:
        self.rms = RunningMeanStd(shape, device=device)
        self.clip = float(clip)
        self.eps = float(eps)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        out = (obs.to(torch.float64) - self.rms.mean) / torch.sqrt(self.rms.var + self.eps)
        return out.clamp(-self.clip, self.clip).to(obs.dtype)

    def update(self, raw_obs: torch.Tensor) -> None:
        self.rms.update(raw_obs)

    def state_dict(self) -> dict:
        return self.rms.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rms.load_state_dict(state)


class RewardScaler:
    """rₜ / √(Var[R] + ε) with Rₜ = γ Rₜ₋₁ + rₜ per environment, reset at episode ends.

    :meth:`scale` advances the per-environment return accumulators and remembers the returns;
    :meth:`commit` merges the remembered returns into the running variance (once per rollout).
    The accumulators are per-rank state (checkpointed with the environments); the running
    statistics are shared.
    """

    def __init__(self, num_envs: int, gamma: float, *, clip: float = 10.0, eps: float = 1e-8,
                 device: torch.device | str = "cpu") -> None:
        self.rms = RunningMeanStd((), device=device)
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.eps = float(eps)
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self._pending: list[torch.Tensor] = []

    def scale(self, rewards: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Scale one step's ``[N]`` rewards; ``done`` ``[N]`` bool marks episodes that ended."""
        self.returns = self.returns * self.gamma + rewards.to(torch.float64)
        self._pending.append(self.returns.clone())
        self.returns = torch.where(done, torch.zeros_like(self.returns), self.returns)
        out = rewards.to(torch.float64) / torch.sqrt(self.rms.var + self.eps)
        return out.clamp(-self.clip, self.clip).to(rewards.dtype)

    def pending(self) -> torch.Tensor:
        """The returns remembered since the last :meth:`commit`, flattened."""
        if not self._pending:
            return torch.zeros(0, dtype=torch.float64, device=self.returns.device)
        return torch.cat(self._pending)

    def commit(self, returns: torch.Tensor | None = None) -> None:
        """Merge ``returns`` (default: :meth:`pending`) into the running variance; clear."""
        r = self.pending() if returns is None else returns
        self._pending = []
        if r.numel():
            self.rms.update(r.reshape(-1, *self.rms.mean.shape))

    def state_dict(self) -> dict:
        return self.rms.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rms.load_state_dict(state)
