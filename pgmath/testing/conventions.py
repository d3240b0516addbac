"""Adapters from pgmath's rollout conventions to those of other libraries.

A check draws a rollout in pgmath's conventions (:class:`~pgmath.rollouts.Rollout`,
time-major ``[T, *B]``), hands it to the user's function in *their* convention, and brings the
answer back to ``[T, *B]`` float64 for the comparison. So a user wraps nothing.

GAE conventions (``check_gae(fn, convention=...)``):

* ``"pgmath"`` (default): ``fn(rewards, values, next_values, terminated, truncated, *, gamma,
  lam)``, time-major ``[T, *B]`` torch tensors (see :mod:`pgmath.returns`).
* ``"sb3"`` — Stable-Baselines3 / CleanRL: ``fn(rewards, values, episode_starts, last_values,
  dones, *, gamma, lam)`` with ``[T, n_envs]`` NumPy arrays. ``episode_starts[t]``: observation t
  began an episode (so step t−1 ended one); ``last_values``, ``dones`` ``[n_envs]``: value of the
  observation after the last step and whether the last step ended an episode. A truncation's
  bootstrap is folded into the reward, ``rₜ + γ V(final obs)``, as SB3's collection loop does
  (only when the step was truncated and not terminated, like SB3's ``TimeLimit.truncated``).
* ``"rlax"`` — DeepMind rlax, one sequence: ``fn(r_t [T], discount_t [T], lambda_, values
  [T+1])`` (rlax's ``truncated_generalized_advantage_estimation`` order; a function whose third
  parameter is named ``values`` is called ``fn(r_t, discount_t, values, lam)``), NumPy arrays,
  one call per environment. ``discount_t = γ (1 − terminated)``; ``values[T]`` bootstraps the
  last step. rlax has no truncation flag, so a truncation inside the sequence is folded like
  SB3's: ``r_t + γ V(final obs)`` with ``discount_t = 0``.
* ``"torchrl"`` — TorchRL's functional ``generalized_advantage_estimate(gamma, lmbda,
  state_value, next_state_value, reward, done, terminated)``: batch-major ``[n_envs, T, 1]``
  tensors, ``done = terminated | truncated``.

A function may return the advantages, or a pair ``(advantages, value_targets)`` (TorchRL, or
SB3's ``advantages`` and ``returns``): then the value targets are checked too, against the
λ-returns ``Â + V``. Outputs may be NumPy arrays, torch tensors (any device) or anything
``numpy.asarray`` accepts (JAX arrays).

Returns conventions (``check_returns``): ``"pgmath"`` ``fn(rewards, terminated, truncated, *,
gamma, next_values=None)``; ``"rlax"`` ``fn(r_t, discount_t, v_t)`` (rlax's
``discounted_returns``: ``v_t[T-1]`` bootstraps the end); ``"torchrl"`` ``fn(gamma,
next_state_value, reward, done, terminated)`` (TorchRL's ``td1_return_estimate``).

Checked by: ``tests/test_testing_conventions.py`` (a correct implementation written in each
convention passes; what each adapter hands over, case by case) and ``tests/test_testing_sb3.py``
(the sb3 adapter with Stable-Baselines3's own ``RolloutBuffer``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from pgmath.rollouts import Rollout

__all__ = [
    "GAE_CONVENTIONS",
    "RETURNS_CONVENTIONS",
    "AdapterResult",
    "Convention",
    "ConventionError",
    "get_convention",
    "output_eps",
    "rlax_lambda_position",
    "to_numpy",
    "to_rlax",
    "to_sb3",
    "to_torchrl",
]

ArrayKind = Literal["torch", "numpy"]


class ConventionError(AssertionError):
    """The user's function returned something that cannot be compared (wrong shape, type)."""


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype in (torch.bfloat16,):
        return np.dtype(np.float32)  # NumPy has no bfloat16
    return torch.empty((), dtype=dtype).numpy().dtype


def _arr(x: torch.Tensor, kind: ArrayKind) -> Any:
    """A tensor as the user gets it: a tensor (as is) or a NumPy array (float dtype kept)."""
    if kind == "torch":
        return x
    if x.dtype == torch.bool:
        return x.detach().cpu().numpy()
    return x.detach().cpu().to(torch.float32 if x.dtype == torch.bfloat16 else x.dtype).numpy()


def to_numpy(x: object, what: str = "your function's output") -> tuple[np.ndarray, float]:
    """``(x as float64 ndarray, machine epsilon of x's own dtype)``.

    Accepts torch tensors (any device, autograd or not), NumPy arrays and anything
    ``numpy.asarray`` takes (JAX arrays, lists). Non-float results raise :class:`ConventionError`.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not t.is_floating_point():
            raise ConventionError(f"{what} has dtype {t.dtype}; a floating-point result is needed")
        eps = float(torch.finfo(t.dtype).eps)
        return t.cpu().double().numpy(), eps
    try:
        a = np.asarray(x)
    except Exception as exc:  # any conversion failure is the user's output type
        raise ConventionError(f"{what} ({type(x).__name__}) cannot be converted to an array: {exc}") from exc
    if a.dtype.kind in "iubcOSU":
        raise ConventionError(f"{what} has dtype {a.dtype}; a real floating-point result is needed")
    try:
        eps = float(np.finfo(a.dtype).eps)
    except (TypeError, ValueError):  # e.g. ml_dtypes.bfloat16 from JAX
        eps = 2.0**-7
    return a.astype(np.float64), eps


def output_eps(*dtypes: torch.dtype) -> float:
    """The largest machine epsilon among ``dtypes``."""
    return max(float(torch.finfo(d).eps) for d in dtypes)


@dataclass
class AdapterResult:
    """What an adapter brings back from the user's function, in pgmath's layout."""

    advantages: np.ndarray  # [T, *B] float64 (or returns, for a returns convention)
    value_targets: np.ndarray | None  # [T, *B] when the function returned a pair
    eps: float  # machine epsilon of the function's output dtype
    shown: dict[str, np.ndarray] = field(default_factory=dict)  # inputs as passed, pgmath layout


@dataclass(frozen=True)
class Convention:
    """A calling convention: how to call ``fn`` on a rollout and read its answer."""

    name: str
    signature: str
    arrays: ArrayKind  # what the function receives by default
    call: Callable[[Callable[..., Any], Rollout, ArrayKind], AdapterResult]


def _require(case: Rollout, what: str, *names: str) -> None:
    """A ``ValueError`` naming the harness fields ``what`` needs that ``case`` lacks."""
    missing = [n for n in names if getattr(case, n) is None]
    if missing:
        raise ValueError(f"{what} needs a rollout with {', '.join(missing)} set "
                         "(make_rollout and the rollouts() strategy set every field)")


def _flat(x: torch.Tensor, T: int) -> torch.Tensor:
    """``[T, *B]`` -> ``[T, N]``."""
    return x.reshape(T, -1)


def _split_output(out: object) -> tuple[object, object | None]:
    if isinstance(out, (tuple, list)) and len(out) == 2 and not isinstance(out[0], (int, float)):
        return out[0], out[1]
    if isinstance(out, (tuple, list)) and len(out) == 1:
        return out[0], None
    return out, None


def _reshape(a: np.ndarray, accepted: list[tuple[int, ...]], target: tuple[int, ...], what: str) -> np.ndarray:
    for shape in accepted:
        if tuple(a.shape) == tuple(shape):
            return a.reshape(target)
    want = " or ".join(str(tuple(s)) for s in dict.fromkeys(map(tuple, accepted)))
    raise ConventionError(f"{what} has shape {tuple(a.shape)}; expected {want}")


def _read(out: object, accepted: list[tuple[int, ...]], target: tuple[int, ...], what: str):
    adv, vt = _split_output(out)
    a, eps = to_numpy(adv, f"{what} (advantages)")
    a = _reshape(a, accepted, target, f"{what} (advantages)")
    v = None
    if vt is not None:
        v, eps2 = to_numpy(vt, f"{what} (value targets, the second element)")
        v = _reshape(v, accepted, target, f"{what} (value targets, the second element)")
        eps = max(eps, eps2)
    return a, v, eps


def _show(**xs: torch.Tensor) -> dict[str, np.ndarray]:
    out = {}
    for k, x in xs.items():
        t = x.detach().cpu()
        out[k] = t.numpy() if t.dtype == torch.bool else t.double().numpy()
    return out


# --------------------------------------------------------------------------------------------
# pgmath


def _gae_pgmath(fn, case: Rollout, kind: ArrayKind) -> AdapterResult:
    out = fn(
        _arr(case.rewards, kind), _arr(case.values, kind), _arr(case.next_values, kind),
        _arr(case.terminated, kind), _arr(case.truncated, kind), gamma=case.gamma, lam=case.lam,
    )
    shape = (case.T, *case.batch_shape)
    a, v, eps = _read(out, [shape], shape, "your function's output")
    return AdapterResult(a, v, eps)


def _returns_pgmath(fn, case: Rollout, kind: ArrayKind, bootstrap: bool = True) -> AdapterResult:
    kw: dict[str, Any] = {"gamma": case.gamma}
    if bootstrap:
        kw["next_values"] = _arr(case.next_values, kind)
    out = fn(_arr(case.rewards, kind), _arr(case.terminated, kind), _arr(case.truncated, kind), **kw)
    shape = (case.T, *case.batch_shape)
    a, v, eps = _read(out, [shape], shape, "your function's output")
    return AdapterResult(a, v, eps)


# --------------------------------------------------------------------------------------------
# Stable-Baselines3 / CleanRL


def to_sb3(case: Rollout) -> dict[str, torch.Tensor]:
    """The rollout as Stable-Baselines3 stores it: ``[T, n_envs]`` / ``[n_envs]`` tensors.

    ``rewards`` has a truncation's bootstrap folded in (``rₜ + γ V(final obs)`` where the step was
    truncated and not terminated, as SB3's ``collect_rollouts`` does); ``episode_starts[t+1] =
    done[t]`` and ``episode_starts[0]`` is ``case.first_episode_start``; ``last_values`` is the
    value of the observation returned after the last step and ``dones`` whether it ended an
    episode.
    """
    _require(case, "to_sb3", "gamma", "last_values", "first_episode_start")
    T = case.T
    fold = case.truncated & ~case.terminated
    rewards = case.rewards + case.gamma * fold.to(case.dtype) * case.next_values
    done = case.done
    starts = torch.cat([case.first_episode_start.reshape(1, *case.batch_shape), done[:-1]], 0)
    return {
        "rewards": _flat(rewards, T),
        "values": _flat(case.values, T),
        "episode_starts": _flat(starts, T).to(case.dtype),  # SB3 stores them as floats
        "last_values": case.last_values.reshape(-1),
        "dones": done[-1].reshape(-1),
    }


def _gae_sb3(fn, case: Rollout, kind: ArrayKind) -> AdapterResult:
    x = to_sb3(case)
    out = fn(
        _arr(x["rewards"], kind), _arr(x["values"], kind), _arr(x["episode_starts"], kind),
        _arr(x["last_values"], kind), _arr(x["dones"], kind), gamma=case.gamma, lam=case.lam,
    )
    T, B = case.T, case.batch_shape
    N = x["rewards"].shape[1]
    accepted = [(T, N), (T, *B)] + ([(T,)] if N == 1 else [])
    a, v, eps = _read(out, accepted, (T, *B), "your function's output")
    shown = _show(
        rewards=x["rewards"].reshape(T, *B), episode_starts=x["episode_starts"].reshape(T, *B),
        last_values=x["last_values"].reshape(B), dones=x["dones"].reshape(B),
    )
    return AdapterResult(a, v, eps, shown)


# --------------------------------------------------------------------------------------------
# rlax


def to_rlax(case: Rollout) -> dict[str, torch.Tensor]:
    """The rollout as rlax sequences, stacked over environments on the last axis.

    Returns ``r_t [T, N]``, ``discount_t [T, N]`` (γ (1 − terminated), and 0 where a truncation
    was folded into ``r_t``), ``values [T+1, N]`` (``values[T]`` bootstraps the last step) and
    ``v_t [T, N]`` (values of the next states, for rlax's ``discounted_returns``).
    """
    _require(case, "to_rlax", "gamma", "last_values")
    T, g = case.T, case.gamma
    last = torch.zeros_like(case.terminated)
    last[-1] = True
    fold = case.truncated & ~case.terminated & ~last  # truncations inside the sequence
    r_t = case.rewards + g * fold.to(case.dtype) * case.next_values
    discount = g * (~(case.terminated | fold)).to(case.dtype)
    # values[T]: the final observation's value, or (after a termination, where discount_t = 0
    # ignores it) the reset observation's, as an environment loop would record it
    boot = torch.where(case.terminated[-1], case.last_values, case.next_values[-1])
    values = torch.cat([case.values, boot.reshape(1, *case.batch_shape)], 0)
    return {
        "r_t": _flat(r_t, T),
        "discount_t": _flat(discount, T),
        "values": _flat(values, T + 1),
        "v_t": _flat(case.next_values, T),
    }


def rlax_lambda_position(fn: Callable[..., Any]) -> int:
    """2 for rlax's order (r_t, discount_t, lambda_, values); 3 for (r_t, discount_t, values, lam)."""
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return 2
    if len(params) >= 4 and "value" in params[2].name.lower():
        return 3
    return 2


def _gae_rlax(fn, case: Rollout, kind: ArrayKind) -> AdapterResult:
    x = to_rlax(case)
    pos = rlax_lambda_position(fn)
    T, B = case.T, case.batch_shape
    advs, vts, eps = [], [], 0.0
    for j in range(x["r_t"].shape[1]):
        r, d, v = (_arr(x[k][:, j].contiguous(), kind) for k in ("r_t", "discount_t", "values"))
        out = fn(r, d, case.lam, v) if pos == 2 else fn(r, d, v, case.lam)
        a, vt, e = _read(out, [(T,)], (T,), f"your function's output for environment {j}")
        advs.append(a)
        vts.append(vt)
        eps = max(eps, e)
    adv = np.stack(advs, 1).reshape(T, *B)
    vt = None if any(v is None for v in vts) else np.stack(vts, 1).reshape(T, *B)
    shown = _show(
        r_t=x["r_t"].reshape(T, *B), discount_t=x["discount_t"].reshape(T, *B),
        values_T=x["values"][-1].reshape(B),
    )
    return AdapterResult(adv, vt, eps, shown)


def _returns_rlax(fn, case: Rollout, kind: ArrayKind, bootstrap: bool = True) -> AdapterResult:
    x = to_rlax(case)
    T, B = case.T, case.batch_shape
    v_src = x["v_t"]  # (without bootstrap the check passes next_values = 0)
    rs, eps = [], 0.0
    for j in range(x["r_t"].shape[1]):
        r, d, v = (_arr(t[:, j].contiguous(), kind) for t in (x["r_t"], x["discount_t"], v_src))
        a, _, e = _read(fn(r, d, v), [(T,)], (T,), f"your function's output for environment {j}")
        rs.append(a)
        eps = max(eps, e)
    shown = _show(r_t=x["r_t"].reshape(T, *B), discount_t=x["discount_t"].reshape(T, *B))
    return AdapterResult(np.stack(rs, 1).reshape(T, *B), None, eps, shown)


# --------------------------------------------------------------------------------------------
# TorchRL


def to_torchrl(case: Rollout) -> dict[str, torch.Tensor]:
    """The rollout batch-major ``[N, T, 1]`` as TorchRL's functional value estimators take it."""
    T = case.T

    def bm(x: torch.Tensor) -> torch.Tensor:
        return _flat(x, T).transpose(0, 1).unsqueeze(-1).contiguous()

    return {
        "state_value": bm(case.values),
        "next_state_value": bm(case.next_values),
        "reward": bm(case.rewards),
        "done": bm(case.done),
        "terminated": bm(case.terminated),
    }


def _from_batch_major(a: np.ndarray, case: Rollout) -> np.ndarray:
    N = a.shape[0]
    return a.reshape(N, case.T).T.reshape(case.T, *case.batch_shape)


def _read_torchrl(out: object, case: Rollout):
    T = case.T
    N = math.prod(case.batch_shape)
    a, v, eps = _read(out, [(N, T, 1), (N, T)], (N, T), "your function's output")
    return _from_batch_major(a, case), None if v is None else _from_batch_major(v, case), eps


def _gae_torchrl(fn, case: Rollout, kind: ArrayKind) -> AdapterResult:
    x = to_torchrl(case)
    out = fn(
        case.gamma, case.lam, _arr(x["state_value"], kind), _arr(x["next_state_value"], kind),
        _arr(x["reward"], kind), _arr(x["done"], kind), _arr(x["terminated"], kind),
    )
    a, v, eps = _read_torchrl(out, case)
    return AdapterResult(a, v, eps)


def _returns_torchrl(fn, case: Rollout, kind: ArrayKind, bootstrap: bool = True) -> AdapterResult:
    x = to_torchrl(case)
    nsv = x["next_state_value"]  # (without bootstrap the check passes next_values = 0)
    out = fn(
        case.gamma, _arr(nsv, kind), _arr(x["reward"], kind), _arr(x["done"], kind),
        _arr(x["terminated"], kind),
    )
    a, _, eps = _read_torchrl(out, case)
    return AdapterResult(a, None, eps)


GAE_CONVENTIONS: dict[str, Convention] = {
    "pgmath": Convention(
        "pgmath",
        "fn(rewards, values, next_values, terminated, truncated, *, gamma, lam), [T, *B]",
        "torch", _gae_pgmath,
    ),
    "sb3": Convention(
        "sb3",
        "fn(rewards, values, episode_starts, last_values, dones, *, gamma, lam), [T, n_envs]",
        "numpy", _gae_sb3,
    ),
    "rlax": Convention(
        "rlax", "fn(r_t [T], discount_t [T], lambda_, values [T+1]), one sequence", "numpy", _gae_rlax,
    ),
    "torchrl": Convention(
        "torchrl",
        "fn(gamma, lmbda, state_value, next_state_value, reward, done, terminated), [N, T, 1]",
        "torch", _gae_torchrl,
    ),
}

RETURNS_CONVENTIONS: dict[str, Convention] = {
    "pgmath": Convention(
        "pgmath", "fn(rewards, terminated, truncated, *, gamma, next_values=None), [T, *B]",
        "torch", _returns_pgmath,
    ),
    "rlax": Convention("rlax", "fn(r_t [T], discount_t [T], v_t [T]), one sequence", "numpy", _returns_rlax),
    "torchrl": Convention(
        "torchrl", "fn(gamma, next_state_value, reward, done, terminated), [N, T, 1]",
        "torch", _returns_torchrl,
    ),
}


def get_convention(table: dict[str, Convention], name: str, what: str) -> Convention:
    """Look a convention up by name; a ``ValueError`` lists the known ones."""
    if name not in table:
        raise ValueError(f"convention must be one of {sorted(table)} for {what}, got {name!r}")
    return table[name]
