"""Actor and critic networks; the policy's log-probabilities and entropies come from pgmath's core.

* Discrete actions: πθ(·|s) = softmax(zθ(s)); log π and H from :func:`pgmath.categorical_log_prob`
  and :func:`pgmath.categorical_entropy`.
* Continuous actions: πθ(·|s) = N(μθ(s), diag σ²) with a state-independent log σ parameter
  (Schulman et al., 2017; CleanRL ``ppo_continuous_action.py``); log π and H from
  :func:`pgmath.gaussian_log_prob` and :func:`pgmath.gaussian_entropy`. Samples are stored
  unclipped (their log-probability is exact); the environment receives them clipped to the
  action bounds.
* Separate actor and critic MLPs (no shared trunk), as CleanRL and Stable-Baselines3 use for
  these tasks (Andrychowicz et al., 2021, §3: separate networks perform better).
* Orthogonal initialisation (Saxe et al., 2014) with gain √2 on hidden layers, 0.01 on the policy
  head and 1 on the value head, zero biases: CleanRL / OpenAI baselines ("37 details", #2). Without
  it, PyTorch's default (Kaiming-uniform) init. Either way the weights are drawn from an explicit
  ``torch.Generator``: the global RNG is neither used nor advanced.

Sampling uses an explicit generator: categorical by inversion of the cumulative softmax, Gaussian by
μ + σ ε with ε ~ N(0, I).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

import pgmath

__all__ = ["ActorCritic", "mlp"]

_ACT = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """An ``nn.Linear`` left uninitialised (no draw from the global RNG); see :func:`_init`."""
    return torch.nn.utils.skip_init(nn.Linear, n_in, n_out)


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [_linear(n_in, h), _ACT[activation]()]
        n_in = h
    layers.append(_linear(n_in, n_out))
    return nn.Sequential(*layers)


def _forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` without the per-module call overhead (hooks are not supported; none are used)."""
    for m in net:
        if isinstance(m, nn.Linear):
            x = nn.functional.linear(x, m.weight, m.bias)
        elif isinstance(m, nn.Tanh):
            x = torch.tanh(x)
        else:
            x = torch.relu(x)
    return x


def _init(net: nn.Sequential, head_gain: float, ortho: bool, g: torch.Generator) -> None:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            if ortho:
                gain = head_gain if i == len(linears) - 1 else math.sqrt(2.0)
                nn.init.orthogonal_(lin.weight, gain=gain, generator=g)
                lin.bias.zero_()
            else:  # PyTorch's nn.Linear.reset_parameters, with our generator
                nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5.0), generator=g)
                bound = 1.0 / math.sqrt(lin.in_features)
                nn.init.uniform_(lin.bias, -bound, bound, generator=g)


class ActorCritic(nn.Module):
    """Policy πθ(a|s) and (optionally) value V_φ(s) as two MLPs.

    Args:
      obs_dim: size of the flattened observation.
      action_dim: number of discrete actions, or the dimension of a continuous action.
      discrete: categorical (True) or diagonal Gaussian (False) policy.
      hidden, activation: MLP shape.
      ortho_init: orthogonal init (see module docstring).
      log_std_init: initial log σ (continuous only).
      critic: build the value network (False for REINFORCE without a baseline).
      generator: CPU generator for the initial weights.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        critic: bool = True,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        if activation not in _ACT:
            raise ValueError(f"activation must be one of {sorted(_ACT)}, got {activation!r}")
        self.discrete = bool(discrete)
        self.action_dim = int(action_dim)
        self.actor = mlp(obs_dim, hidden, action_dim, activation)
        _init(self.actor, 0.01, ortho_init, generator)
        self.critic = mlp(obs_dim, hidden, 1, activation) if critic else None
        if self.critic is not None:
            _init(self.critic, 1.0, ortho_init, generator)
        self.log_std = None if discrete else nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    @property
    def has_critic(self) -> bool:
        return self.critic is not None

    def policy_params(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, A]`` (discrete) or means ``[B, D]`` (continuous)."""
        return _forward(self.actor, obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) ``[B]`` (zeros without a critic)."""
        if self.critic is None:
            return torch.zeros(obs.shape[:-1], dtype=obs.dtype, device=obs.device)
        return _forward(self.critic, obs).squeeze(-1)

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log πθ(a|s) ``[B]`` by pgmath's core."""
        if self.discrete:
            return pgmath.categorical_log_prob(params, actions)
        return pgmath.gaussian_log_prob(params, self.log_std, actions)

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """H(πθ(·|s)) ``[B]`` by pgmath's core."""
        if self.discrete:
            return pgmath.categorical_entropy(params)
        return pgmath.gaussian_entropy(self.log_std.expand_as(params))

    def sample(self, params: torch.Tensor, generator: torch.Generator, *,
               deterministic: bool = False) -> torch.Tensor:
        """a ~ πθ(·|s) (or the greedy action: argmax / mean)."""
        if self.discrete:
            if deterministic:
                return params.argmax(-1)
            # inverse CDF: a = #{i : F(i) <= u}, u ~ U[0, 1), F the cumulative softmax
            cdf = torch.softmax(params, -1).cumsum(-1)
            u = torch.rand((*params.shape[:-1], 1), dtype=cdf.dtype, device=cdf.device, generator=generator)
            return (cdf <= u).sum(-1).clamp_(max=params.shape[-1] - 1)
        if deterministic:
            return params
        eps = torch.randn(params.shape, dtype=params.dtype, device=params.device, generator=generator)
        return params + self.log_std.exp() * eps
