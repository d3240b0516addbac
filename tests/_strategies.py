"""Hypothesis strategies for the core tests: realistic rollouts with chosen episode-end patterns."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from pgmath.rollouts import Rollout, random_rollout

PATTERNS = ("random", "none", "every", "first", "last", "dense")


@st.composite
def rollouts(draw, dtypes=(torch.float64,), max_T: int = 40) -> Rollout:
    """A float rollout ``[T, *B]`` whose episodes end by the drawn pattern."""
    T = draw(st.integers(1, max_T))
    B = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    dtype = draw(st.sampled_from(dtypes))
    pattern = draw(st.sampled_from(PATTERNS))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    rates = {"random": (0.15, 0.1), "dense": (0.5, 0.4)}.get(pattern, (0.0, 0.0))
    ro = random_rollout(T, B, p_terminate=rates[0], p_truncate=rates[1], dtype=torch.float64, generator=g)
    term, trunc = ro.terminated.clone(), ro.truncated.clone()
    kind = draw(st.sampled_from(("terminated", "truncated")))
    flags = term if kind == "terminated" else trunc
    if pattern == "every":
        flags[:] = True
    elif pattern == "first":
        flags[0] = True
    elif pattern == "last":
        flags[-1] = True
    if kind == "terminated":
        trunc &= ~term
    else:
        term &= ~trunc
    return Rollout(*(x.to(dtype) for x in ro[:3]), term, trunc)
