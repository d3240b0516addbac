"""The Python examples of the harness docs run as written.

Every ```python block of docs/verify-your-implementation.md, docs/testing/index.md and
docs/testing/mutants.md is executed. The user's module the examples import (``mytrainer`` and its
submodules) is stubbed with *correct* implementations written here, so an example that calls a
check must pass; a block that defines ``test_*`` functions has them called with the plugin's
fixtures (``pgmath_checks``, ``check_gae``, …). A misspelt name (``pgmath_checks.check_gae``), a
wrong signature or a wrong keyword in a doc fails here.
"""

from __future__ import annotations

import inspect
import pathlib
import re
import sys
import types

import numpy as np
import pytest

import pgmath
import pgmath.llm
from pgmath.testing import check_gae
from pgmath.testing.plugin import PgmathChecks

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["docs/verify-your-implementation.md", "docs/testing/index.md", "docs/testing/mutants.md"]


# --- the user's code the examples import: correct implementations ------------------------------


def compute_gae(rewards, values, episode_starts, last_values, dones, *, gamma, lam):
    """Stable-Baselines3's RolloutBuffer loop (the sb3 convention), written out."""
    adv = np.zeros_like(rewards)
    last = 0.0
    for step in reversed(range(rewards.shape[0])):  # backward in time
        if step == rewards.shape[0] - 1:
            nnt, nv = 1.0 - dones.astype(rewards.dtype), last_values
        else:
            nnt, nv = 1.0 - episode_starts[step + 1], values[step + 1]
        last = rewards[step] + gamma * nv * nnt - values[step] + gamma * lam * nnt * last
        adv[step] = last
    return adv


def reward_to_go(rewards, terminated, truncated, *, gamma, next_values=None):
    return pgmath.discounted_returns(rewards, terminated, truncated, gamma=gamma, next_values=next_values)


def ppo_loss(log_probs, old_log_probs, advantages, *, clip_eps, mask):
    return pgmath.ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=clip_eps, mask=mask)[0]


def k3(log_probs, ref_log_probs):
    return pgmath.kl_estimate(log_probs, ref_log_probs, "k3")


def advantages(rewards):
    return pgmath.llm.group_advantages(rewards, eps=1e-6)


USER = {"compute_gae": compute_gae, "reward_to_go": reward_to_go, "ppo_loss": ppo_loss, "k3": k3,
        "advantages": advantages}
SUBMODULES = ("buffers", "returns", "losses", "kl", "grpo")


@pytest.fixture
def mytrainer(monkeypatch):
    for name in ("mytrainer", *(f"mytrainer.{s}" for s in SUBMODULES)):
        module = types.ModuleType(name)
        module.__dict__.update(USER)
        monkeypatch.setitem(sys.modules, name, module)


def _blocks(page: str) -> list[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


CASES = [(page, i) for page in PAGES for i in range(len(_blocks(page)))]


def test_every_page_has_examples():
    for page in PAGES:
        assert _blocks(page), page


def _call_tests(namespace: dict) -> None:
    """Call the block's ``test_*`` functions with the plugin's fixtures (few examples)."""
    checks = PgmathChecks(max_examples=10)
    for name, fn in list(namespace.items()):
        if not (name.startswith("test_") and callable(fn)):
            continue
        params = inspect.signature(fn).parameters
        kwargs = {p: checks if p == "pgmath_checks" else getattr(checks, p.removeprefix("check_"))
                  for p in params}
        fn(**kwargs)


@pytest.mark.parametrize(("page", "index"), CASES, ids=[f"{p.split('/')[-1]}-{i}" for p, i in CASES])
def test_doc_example_runs(page, index, mytrainer):
    code = _blocks(page)[index]
    # the catalogue page's example shows a check of your own: here check_gae stands in for it
    namespace = {"__name__": "doc_example", "pytest": pytest, "my_check": check_gae}
    exec(compile(code, f"{page}[{index}]", "exec"), namespace)
    _call_tests(namespace)
