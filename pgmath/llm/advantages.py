"""Advantages for language-model policies: group baselines, leave-one-out, REINFORCE++, token GAE.

Notation: a prompt is answered K times; ``rewards[g, k]`` is the checker's score R_{g,k} of
response k to prompt g. Every response-level advantage is broadcast to all tokens of its
response by the loss.

* GRPO (Shao et al., 2024, DeepSeekMath §4.1.2):
      A_{g,k} = (R_{g,k} − mean_k R_g) / (std_k R_g + ε)          (``normalize_std=True``)
      A_{g,k} =  R_{g,k} − mean_k R_g                              (``normalize_std=False``)
  std is the unbiased one (Bessel, as ``torch.std`` in TRL and verl). The mean includes R_{g,k}
  itself, so E[A ∇log π] = (K−1)/K · ∇J (a shrunken step, same direction); dividing by the
  group's std is *not* a baseline: it rescales each prompt's gradient by a random factor, and the
  expectation is no longer proportional to ∇J in general (see ``docs/llm/group_advantages.md``).
* RLOO (Kool, van Hoof & Welling, 2019; Ahmadian et al., 2024):
      A_{g,k} = R_{g,k} − (1/(K−1)) Σ_{j≠k} R_{g,j} = K/(K−1) · (R_{g,k} − mean_k R_g)
  The baseline does not depend on response k, so E[A ∇log π] = ∇J exactly (unbiased).
* REINFORCE++ (Hu, 2025): per-token rewards (score at the last token, −β·k1 on every token),
  reward-to-go Gₜ = Σ_{t'≥t} γ^{t'−t} r_{t'}, then normalised over the whole batch's tokens.
* Token-level GAE with a value head (PPO for LMs, Ouyang et al., 2022; Ziegler et al., 2019):
  γ = 1, the reward at the last response token plus a per-token KL penalty; computed by the
  core :func:`pgmath.gae` on the response tokens (no second copy of the recursion).

Group of one response (K = 1): there is no other response to compare with, so a group baseline
is undefined. Both the fast and the reference paths raise ``ValueError`` naming ``rewards``
(silently returning 0 would train on nothing; returning R, as verl does, is a different
estimator). A constant group (all R equal, std 0) gets advantage exactly 0 in every path.

Checked by: the specs of :mod:`pgmath.specs.llm_advantages` (``group_advantages``,
``group_advantages_mean``, ``rloo_advantages``, ``token_rewards``, ``token_gae``,
``batch_normalized_returns``: definitions summed directly, reference loops, hand examples, bad
input, wrong variants seen in the field; run by ``tests/test_specs.py``);
``tests/test_llm_functions.py::test_group_advantages_*`` (worked example, ε); exact unbiasedness
in ``tests/test_llm_oracle.py::test_advantage_estimators_exact`` and the verify rows
"RLOO unbiased" / "GRPO mean baseline" / "GRPO std normalization".
"""

from __future__ import annotations

import torch

from pgmath.advantages import gae as _core_gae
from pgmath.advantages import normalize_advantages
from pgmath.numerics import stable_centre
from pgmath.scan import Backend, discounted_cumsum
from pgmath.validation import (
    validate_finite,
    validate_float_tensor,
    validate_mask,
    validate_unit_interval,
)

__all__ = [
    "batch_normalized_returns",
    "group_advantages",
    "group_advantages_reference",
    "rloo_advantages",
    "rloo_advantages_reference",
    "token_gae",
    "token_rewards",
]


def _validate_groups(rewards: object) -> torch.Tensor:
    r = validate_float_tensor(rewards, "rewards")
    if r.dim() != 2:
        raise ValueError(f"rewards must have shape [G, K] (groups × responses), got {tuple(r.shape)}")
    G, K = r.shape
    if G == 0:
        raise ValueError("rewards has no groups (G = 0)")
    if K < 2:
        raise ValueError(
            f"rewards must hold K >= 2 responses per group, got K = {K}: a group of one response "
            "has no group baseline"
        )
    return r


def _validate_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a real number >= 0, got {eps!r}")
    return float(eps)


def group_advantages(
    rewards: torch.Tensor, *, normalize_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO advantages A_{g,k} = (R_{g,k} − mean_k R_g) / (std_k R_g + ε).

    Args:
      rewards: ``[G, K]`` scores, K ≥ 2 responses per prompt.
      normalize_std: divide by the group's (unbiased) std + ε; False: mean baseline only
        (Dr. GRPO).
      eps: ε ≥ 0 added to the std.
    Returns:
      ``[G, K]`` advantages; exactly 0 for a constant group.

    Checked by: the specs ``group_advantages`` (std, ε = 10⁻⁶) and ``group_advantages_mean``
    of :mod:`pgmath.specs.llm_advantages`; ``tests/test_llm_functions.py::test_group_advantages_*``.
    """
    r = _validate_groups(rewards)
    eps = _validate_eps(eps)
    # shifted by a group member, scaled, accumulated in float32 at least (pgmath.numerics): the
    # best response of a near-constant float32 group keeps a positive advantage
    centred, std = stable_centre(r, 1)
    const = (r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True))
    if normalize_std:
        centred = centred / (std + eps)
    centred = centred.to(r.dtype)
    return torch.where(const, torch.zeros_like(centred), centred)


def group_advantages_reference(
    rewards: torch.Tensor, *, normalize_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """:func:`group_advantages` by loops over groups and responses (the reference)."""
    r = _validate_groups(rewards)
    eps = _validate_eps(eps)
    G, K = r.shape
    out = torch.zeros_like(r)
    # over groups g, then over the responses k of the group
    for g in range(G):
        vals = [r[g, k] for k in range(K)]
        if all(bool(v == vals[0]) for v in vals):
            continue  # constant group: advantage 0
        mean = sum(vals) / K
        var = sum((v - mean) ** 2 for v in vals) / (K - 1)
        scale = var.sqrt() + eps if normalize_std else 1.0
        for k in range(K):
            out[g, k] = (vals[k] - mean) / scale
    return out


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages A_{g,k} = R_{g,k} − mean_{j≠k} R_{g,j}.

    Computed as K/(K−1) · (R − mean R) (the same number, one pass). Unbiased: the baseline of
    response k does not depend on it.

    Args:
      rewards: ``[G, K]``, K ≥ 2.
    Returns:
      ``[G, K]``; exactly 0 for a constant group.

    Checked by: the spec ``rloo_advantages`` of :mod:`pgmath.specs.llm_advantages` and the
    exact / statistical unbiasedness tests in ``tests/test_llm_oracle.py``.
    """
    r = _validate_groups(rewards)
    K = r.shape[1]
    centred, _ = stable_centre(r, 1)
    adv = (centred * (K / (K - 1))).to(r.dtype)
    const = (r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True))
    return torch.where(const, torch.zeros_like(adv), adv)


def rloo_advantages_reference(rewards: torch.Tensor) -> torch.Tensor:
    """:func:`rloo_advantages` by loops: R_{g,k} minus the plain mean of the other responses."""
    r = _validate_groups(rewards)
    G, K = r.shape
    out = torch.zeros_like(r)
    # over groups g, then over the held-out response k
    for g in range(G):
        if all(bool(r[g, j] == r[g, 0]) for j in range(K)):
            continue  # constant group: advantage 0
        for k in range(K):
            others = [r[g, j] for j in range(K) if j != k]
            out[g, k] = r[g, k] - sum(others) / (K - 1)
    return out


# ---------------------------------------------------------------------------------------------
# Token-level rewards and returns.


def _validate_token_tensor(x: object, name: str, m: torch.Tensor) -> torch.Tensor:
    x = validate_float_tensor(x, name, finite=False)
    if tuple(x.shape) != tuple(m.shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)} but mask has shape {tuple(m.shape)}")
    if x.device != m.device:
        raise ValueError(f"{name} is on {x.device} but mask is on {m.device}")
    validate_finite(x, name, mask=m)
    return x


def _validate_token_mask(mask: object) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() != 2 or mask.numel() == 0:
        raise ValueError(f"mask must have a non-empty shape [B, L], got {tuple(mask.shape)}")
    return validate_mask(mask, "mask", mask.shape, mask.device)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` index of the last true entry of each row of ``mask`` (−1 for an empty row)."""
    m = _validate_token_mask(mask)
    L = m.shape[1]
    pos = torch.arange(L, device=m.device).expand_as(m)
    return torch.where(m, pos, torch.full_like(pos, -1)).amax(dim=1)


def token_rewards(
    scores: torch.Tensor, mask: torch.Tensor, *, kl_penalty: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token rewards rₜ = [t = last response token] · score − penaltyₜ.

    The score goes on the *last real token* of each response (the last true entry of ``mask``),
    never on the first pad (``mask.sum(1)`` used as an index is off by one on right-padded rows
    and wrong on left-padded ones). Rows with no response token get no reward.

    Args:
      scores: ``[B]`` sequence-level rewards.
      mask: ``[B, L]`` bool/0-1 response tokens.
      kl_penalty: optional ``[B, L]`` per-token penalty (e.g. β·k1 from
        :func:`pgmath.llm.kl_penalty`), subtracted on the response tokens; detached.
    Returns:
      ``[B, L]`` rewards, 0 outside the mask.

    Checked by: the spec ``token_rewards`` of :mod:`pgmath.specs.llm_advantages` (right- and
    left-padded rows, the first-pad bug as a wrong variant).
    """
    m = _validate_token_mask(mask)
    s = validate_float_tensor(scores, "scores")
    if tuple(s.shape) != (m.shape[0],):
        raise ValueError(f"scores must have shape [B] = {(m.shape[0],)}, got {tuple(s.shape)}")
    last = last_token_index(m)
    r = torch.zeros(m.shape, dtype=s.dtype, device=s.device)
    has = last >= 0
    rows = torch.arange(m.shape[0], device=m.device)[has]
    r[rows, last[has]] = s.detach()[has]
    if kl_penalty is not None:
        p = _validate_token_tensor(kl_penalty, "kl_penalty", m).detach()
        r = r - torch.where(m, p, torch.zeros((), dtype=p.dtype, device=p.device)).to(r.dtype)
    return r


def _compact(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Gather indices that move each row's true entries to the front, in order."""
    L = m.shape[1]
    pos = torch.arange(L, device=m.device).expand_as(m)
    key = torch.where(m, pos, pos + L)  # true entries first, each group in its original order
    order = key.argsort(dim=1)
    n = int(m.sum(1).max())
    return order[:, : max(n, 1)], m.sum(1), max(n, 1)


def batch_normalized_returns(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    eps: float = 1e-8,
    backend: Backend = "auto",
) -> torch.Tensor:
    """REINFORCE++ advantages: reward-to-go over the response, normalised over the batch.

        Gₜ = rₜ + γ G_{t+1} (over the response tokens of each row, t = last … first)
        Aₜ = (Gₜ − mean G) / (std G + ε),  mean/std over every response token of the batch

    Args:
      rewards: ``[B, L]`` per-token rewards (:func:`token_rewards`); ignored outside the mask.
      mask: ``[B, L]`` response tokens (need not be contiguous: masked positions are skipped,
        not discounted).
      gamma: γ in [0, 1].
      eps: added to the std.
      backend: the core scan's backend (:func:`pgmath.discounted_cumsum`).
    Returns:
      ``[B, L]`` advantages, 0 outside the mask. Needs at least 2 response tokens in the batch.

    Checked by: the spec ``batch_normalized_returns`` of :mod:`pgmath.specs.llm_advantages`
    (a backward loop, a gap in the mask carries the return, pads stay 0).
    """
    m = _validate_token_mask(mask)
    r = _validate_token_tensor(rewards, "rewards", m)
    gamma = validate_unit_interval(gamma, "gamma")
    if int(m.sum()) < 2:
        raise ValueError(f"mask must select at least 2 response tokens to normalise over, got {int(m.sum())}")
    r = torch.where(m, r, torch.zeros((), dtype=r.dtype, device=r.device))
    # a masked position passes the return through unchanged (discount 1, reward 0)
    disc = torch.where(m, torch.full_like(r, gamma), torch.ones_like(r))
    # the recursion runs backward in time, on time-major [L, B] tensors
    G = discounted_cumsum(r.T.contiguous(), disc.T.contiguous(), backend=backend).T
    return normalize_advantages(G, mask=m, eps=eps)


def token_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level GAE over each response, by the core :func:`pgmath.gae`.

    The response tokens of row b are the time steps of one episode that ends (terminates) at
    its last token:

        δₜ = rₜ + γ V_{t⁺} − Vₜ   (t⁺ the next response token; V = 0 after the last one)
        Âₜ = δₜ + γλ Â_{t⁺}

    ``values[b, t]`` is the value head's estimate of the state *before* token t is generated
    (the prefix tokens[<t]), i.e. aligned like :func:`pgmath.llm.token_log_probs`: read from the
    hidden state at position t−1.

    Args:
      rewards: ``[B, L]`` per-token rewards (:func:`token_rewards`: score at the last token,
        −β·KL per token).
      values: ``[B, L]`` V(prefix before token t).
      mask: ``[B, L]`` response tokens (gaps are skipped, not discounted).
      gamma: γ in [0, 1] (1 for LMs).
      lam: λ in [0, 1].
      backend: the core :func:`pgmath.gae` backend ("auto", "torch", "numba", "reference").
    Returns:
      ``(advantages, returns)``, each ``[B, L]`` and 0 outside the mask; returns = Â + V (the
      value head's target).

    Checked by: the spec ``token_gae`` of :mod:`pgmath.specs.llm_advantages` (a per-response
    loop of the core GAE, Σ (γλ)ˡ δ summed directly, λ = 1 → reward-to-go − V);
    ``tests/test_llm_functions.py::test_gradchecks``.
    """
    m = _validate_token_mask(mask)
    r = _validate_token_tensor(rewards, "rewards", m)
    v = _validate_token_tensor(values, "values", m)
    gamma = validate_unit_interval(gamma, "gamma")
    lam = validate_unit_interval(lam, "lam")
    zero = torch.zeros((), dtype=r.dtype, device=r.device)
    r = torch.where(m, r, zero)
    v = torch.where(m, v.to(r.dtype), zero)
    idx, lengths, n = _compact(m)
    rc = r.gather(1, idx).T.contiguous()  # [n, B], time-major
    vc = v.gather(1, idx).T.contiguous()
    valid = torch.arange(n, device=m.device).unsqueeze(1) < lengths.unsqueeze(0)  # [n, B]
    rc = torch.where(valid, rc, zero)
    vc = torch.where(valid, vc, zero)
    next_v = torch.cat([vc[1:], torch.zeros_like(vc[:1])], dim=0)
    terminated = torch.arange(n, device=m.device).unsqueeze(1) >= (lengths.unsqueeze(0) - 1)
    truncated = torch.zeros_like(terminated)
    adv_c = _core_gae(rc, vc, next_v, terminated, truncated, gamma=gamma, lam=lam, backend=backend)
    adv_c = torch.where(valid, adv_c, zero).T  # [B, n]
    adv = torch.zeros_like(r)
    adv.scatter_(1, idx, adv_c)
    adv = torch.where(m, adv, zero)
    return adv, torch.where(m, adv + v, zero)
