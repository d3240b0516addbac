"""``check_token_gae`` and ``check_reinforce_pp_returns``: token-level advantages in the response
layout (:mod:`pgmath.testing.checks.token_layout`) against the specs ``token_gae`` and
``batch_normalized_returns`` (:mod:`pgmath.specs.llm_advantages`).

Token GAE: the response tokens of row b are the steps of one episode that terminates after its
last token, δₜ = rₜ + γV_{t+1} − Vₜ (V = 0 after the last token), Âₜ = δₜ + γλÂ_{t+1}; returns
Âₜ + Vₜ. With ``whiten=True`` the advantages are then standardised over every response token of
the batch (``eps``, ``std_floor`` as :data:`~pgmath.testing.checks.token_layout.STD_FLOORS`;
verl's ``masked_whiten`` is ``std_floor="inside"``, ε = 1e-8). Returns are compared when ``fn``
returns ``(advantages, returns)``.

REINFORCE++ (Hu 2025): Gₜ = rₜ + γG_{t+1} over each response, then standardised over every
response token of the batch.

``nan_pads=False``: finite padding (for a function that multiplies by the mask). Both run at
float64 and float32 unless ``dtype=`` is given; the tolerance scale of an entry bounds
the sum it is made of (Σ (γλ)ˡ (|r| + |V| + |V'|), divided by the std when whitened).

Checked by: ``tests/test_testing_token_checks.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pgmath.testing.checks.core import (
    CheckOptions,
    CheckReport,
    call_user,
    resolve_options,
    run_cases,
    target_name,
)
from pgmath.testing.checks.token_layout import (
    STD_FLOORS,
    TokenCase,
    compare_tokens,
    masked_whiten,
    response_edge_cases,
    response_layouts,
    token_table,
)
from pgmath.testing.diagnosis import Candidate, near_reference, search_family

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields

__all__ = ["check_reinforce_pp_returns", "check_token_gae", "token_gae_expected"]


def token_gae_expected(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float,
                       lam: float, whiten: bool = False, eps: float = 1e-8,
                       std_floor: str = "inside") -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by the spec's per-response loop (float64), advantages whitened when
    asked (returns are computed from the raw advantages)."""
    from pgmath.specs.llm_advantages import token_gae_reference

    m = mask.bool().cpu()
    zero = torch.zeros((), dtype=torch.float64)
    r, v = (torch.where(m, x.detach().cpu().double(), zero) for x in (rewards, values))
    out = token_gae_reference(r, v, m, gamma=gamma, lam=lam)
    adv = masked_whiten(out[0], m, eps=eps, std_floor=std_floor) if whiten and int(m.sum()) > 1 else out[0]
    return adv, out[1]


def _scale(case: TokenCase, gl: float, whiten: bool, exp: np.ndarray) -> np.ndarray:
    m = case.mask.cpu().numpy()
    mag = np.where(m, np.abs(case.a.detach().cpu().double().numpy()) + 2 * np.abs(case.b.detach().cpu().double().numpy()), 0)
    acc = np.zeros_like(mag)
    run = np.zeros(mag.shape[0])
    for t in reversed(range(mag.shape[1])):
        run = mag[:, t] + gl * run * m[:, t]
        acc[:, t] = run
    if whiten:
        sd = float(np.std(exp[m], ddof=1)) if m.sum() > 1 else 1.0
        acc = acc / max(sd, 1e-12) + np.abs(exp) + float(acc[m].max(initial=0.0)) / max(sd, 1e-12)
    return acc + np.abs(exp)


def _split(out: Any) -> tuple[Any, Any]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    return out, None


def check_token_gae(
    fn: Callable[..., Any],
    *,
    gamma: float,
    lam: float,
    whiten: bool = False,
    eps: float = 1e-8,
    std_floor: str = "inside",
    nan_pads: bool = True,
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check ``fn(rewards, values, mask) -> advantages | (advantages, returns)`` (``[B, L]``,
    response layout) against token GAE(γ, λ) (whitened over the batch with ``whiten=True``)."""
    if std_floor not in STD_FLOORS:
        raise ValueError(f"std_floor must be one of {STD_FLOORS}, got {std_floor!r}")
    for name, x in (("gamma", gamma), ("lam", lam)):
        if not 0.0 <= float(x) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {x}")
    fname = target_name(fn)
    label = f"check_token_gae(gamma={gamma}, lam={lam}{', whiten=True' if whiten else ''})"
    names = ("rewards", "values")

    def body_for(opts: CheckOptions) -> Callable[[TokenCase], None]:
        def body(case: TokenCase) -> None:
            if not bool(case.mask.any()):
                return
            out = call_user(lambda: fn(case.a, case.b, case.mask), lambda: f"{label}: {fname} failed",
                            lambda: token_table(case, names, [], set()))
            adv, ret = _split(out)
            exp_a, exp_r = token_gae_expected(case.a, case.b, case.mask, gamma=gamma, lam=lam, whiten=whiten,
                                              eps=eps, std_floor=std_floor)
            ea = exp_a.numpy()

            def diagnose(got: np.ndarray) -> str:
                cands = [Candidate(f"gamma={g}, lam={lam_}", lambda r, v, m, g=g, l_=lam_: token_gae_expected(
                    r, v, m, gamma=g, lam=l_, whiten=whiten, eps=eps, std_floor=std_floor)[0])
                    for g, lam_ in ((gamma, 1.0), (gamma, 0.0), (1.0, lam), (lam, gamma)) if (g, lam_) != (gamma, lam)]
                cands.insert(0, near_reference(lambda r, v, m: token_gae_expected(
                    r, v, m, gamma=gamma, lam=lam, whiten=whiten, eps=eps, std_floor=std_floor)[0]))
                cands += [Candidate(f"whiten={not whiten}", lambda r, v, m: token_gae_expected(
                    r, v, m, gamma=gamma, lam=lam, whiten=not whiten, eps=eps, std_floor=std_floor)[0])]
                cands += [Candidate(f"std_floor={f!r}", lambda r, v, m, f=f: token_gae_expected(
                    r, v, m, gamma=gamma, lam=lam, whiten=whiten, eps=eps, std_floor=f)[0])
                    for f in STD_FLOORS if whiten and f != std_floor]
                msk = case.mask.cpu().numpy()

                def confirm(c: Candidate) -> bool:  # the candidate also reproduces fn on the edge cases
                    for e in response_edge_cases(case.a.dtype, case.a.device):
                        em = e.mask.cpu().numpy()
                        try:
                            user = np.asarray(_split(fn(e.a, e.b, e.mask))[0].detach().cpu().double())
                        except Exception:  # an edge the function refuses confirms nothing
                            continue
                        cand = c.fn(e.a, e.b, e.mask).numpy()
                        if not np.allclose(np.where(em, user, 0), np.where(em, cand, 0), rtol=1e-5, atol=1e-6):
                            return False
                    return True

                return search_family(np.where(msk, got, 0), np.where(msk, ea, 0), cands,
                                     lambda f: np.where(msk, f(case.a, case.b, case.mask).numpy(), 0), confirm)

            gl = gamma * lam
            compare_tokens(label, fname, case, names, "advantages", adv, ea, _scale(case, gl, whiten, ea), opts,
                           4 * case.mask.shape[1], diagnose)
            if ret is not None:
                er = exp_r.numpy()
                compare_tokens(label, fname, case, names, "returns", ret, er, _scale(case, gl, False, er), opts,
                               4 * case.mask.shape[1])

        return body

    return _run(label, fname, body_for, options, overrides, min_tokens=2 if whiten else 1, nan_pads=nan_pads)


def check_reinforce_pp_returns(
    fn: Callable[..., Any],
    *,
    gamma: float = 1.0,
    eps: float = 1e-8,
    std_floor: str = "add",
    nan_pads: bool = True,
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check ``fn(rewards, mask) -> advantages`` (``[B, L]``, response layout) against REINFORCE++:
    the reward-to-go over each response, standardised over every response token of the batch
    (``std_floor="add"``: pgmath's :func:`pgmath.llm.batch_normalized_returns`; ``"inside"``:
    verl's masked_whiten)."""
    if std_floor not in STD_FLOORS:
        raise ValueError(f"std_floor must be one of {STD_FLOORS}, got {std_floor!r}")
    fname = target_name(fn)
    label = f"check_reinforce_pp_returns(gamma={gamma})"
    names = ("rewards", "(unused)")

    def expected(r: torch.Tensor, m: torch.Tensor, floor: str = std_floor, g: float = gamma) -> np.ndarray:
        from pgmath.specs.llm_advantages import batch_normalized_returns_reference

        mb = m.bool().cpu()
        rr = torch.where(mb, r.detach().cpu().double(), torch.zeros((), dtype=torch.float64))
        raw = batch_normalized_returns_reference(rr, mb, gamma=g, eps=0.0 if floor != "add" else eps)
        if floor == "add":
            return raw.numpy()
        ones = torch.zeros_like(rr)
        G = token_gae_expected(rr, ones, mb, gamma=g, lam=1.0)[1]  # reward-to-go: GAE(λ=1) + V with V = 0
        return masked_whiten(G, mb, eps=eps, std_floor=floor).numpy()

    def body_for(opts: CheckOptions) -> Callable[[TokenCase], None]:
        def body(case: TokenCase) -> None:
            if int(case.mask.sum()) < 2:
                return
            out = call_user(lambda: fn(case.a, case.mask), lambda: f"{label}: {fname} failed",
                            lambda: token_table(case, names, [], set()))
            exp = expected(case.a, case.mask)

            def diagnose(got: np.ndarray) -> str:
                msk = case.mask.cpu().numpy()
                cands = [near_reference(lambda r, m: expected(r, m))]
                cands += [Candidate(f"std_floor={f!r}", lambda r, m, f=f: expected(r, m, f)) for f in STD_FLOORS if f != std_floor]
                cands += [Candidate(f"gamma={g}", lambda r, m, g=g: expected(r, m, g=g)) for g in (1.0, 0.99) if g != gamma]
                return search_family(np.where(msk, got, 0), np.where(msk, exp, 0), cands,
                                     lambda f: np.where(msk, f(case.a, case.mask), 0))

            sd = float(np.std(exp[case.mask.cpu().numpy()], ddof=1)) or 1.0
            m = case.mask.cpu().numpy()
            rabs = np.where(m, np.abs(case.a.detach().cpu().double().numpy()), 0)
            scale = np.abs(exp) + float(rabs.sum()) * (1 + 1 / max(sd, 1e-12))
            compare_tokens(label, fname, case, names, "advantages", out, exp, scale, opts, 4 * m.shape[1], diagnose)

        return body

    return _run(label, fname, body_for, options, overrides, min_tokens=2, nan_pads=nan_pads)


def _run(label: str, fname: str, body_for: Callable[[CheckOptions], Callable[[TokenCase], None]],
         options: CheckOptions | None, overrides: dict[str, Any], *, min_tokens: int,
         nan_pads: bool = True) -> CheckReport:
    dtypes = [torch.float64, torch.float32] if "dtype" not in overrides and options is None else [None]
    t0, calls, labels = time.perf_counter(), 0, ()
    for dtype in dtypes:
        opts = resolve_options(options, {**overrides, **({"dtype": dtype} if dtype is not None else {})})
        strat = opts.strategy if opts.strategy is not None else response_layouts(opts.dtype, opts.device,
                                                                                 min_tokens=min_tokens, nan_pads=nan_pads)
        n, labels = run_cases(strat, body_for(opts), response_edge_cases(opts.dtype, opts.device), opts)
        calls += n
    return CheckReport(label, fname, "pgmath.specs.llm_advantages", "pgmath", calls, labels, time.perf_counter() - t0)
