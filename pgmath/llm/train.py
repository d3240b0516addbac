"""GRPO and PPO trainers for a tiny causal transformer on the sorting task (:mod:`pgmath.llm.toy`).

Both trainers are thin loops over the library's functions — nothing here re-implements a formula:

* GRPO (Shao et al., 2024): K responses per prompt, advantages
  :func:`pgmath.llm.group_advantages` (or RLOO), the token loss
  :func:`pgmath.llm.token_policy_loss`, and β · :func:`pgmath.llm.kl_loss` (k3 by default) as a
  loss term against the initial policy.
* PPO (Ouyang et al., 2022 / Ziegler et al., 2019): one response per prompt, a value head on the
  shared trunk, per-token rewards :func:`pgmath.llm.token_rewards` (score at the last real token,
  −β·k1 per token via :func:`pgmath.llm.kl_penalty`), token-level GAE with γ = 1
  (:func:`pgmath.llm.token_gae`, which runs the core :func:`pgmath.gae`), several epochs of
  minibatch updates of the clipped loss plus :func:`pgmath.value_loss`.

``train(config)`` returns the metric history and writes, under ``config.out``: ``metrics.json``,
``plots.png`` (reward, success rate, KL to the reference, response length) and ``model.pt``.

Checked by: ``tests/test_llm_train.py`` (short smoke runs of both trainers, the generation
mask, the checker); the full runs are recorded in ``docs/llm/results.md``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pathlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from pgmath.advantages import normalize_advantages
from pgmath.llm.advantages import group_advantages, rloo_advantages, token_gae, token_rewards
from pgmath.llm.kl import kl_loss, kl_penalty, token_kl
from pgmath.llm.logprobs import token_log_probs
from pgmath.llm.losses import token_policy_loss
from pgmath.llm.model import TinyCausalLM
from pgmath.llm.toy import SortTask
from pgmath.losses import value_loss
from pgmath.optional import require

__all__ = ["TrainConfig", "generate", "train"]


@dataclass
class TrainConfig:
    """Options of both trainers (the CLI flags have the same names)."""

    algo: str = "grpo"  # "grpo" or "ppo"
    n_digits: int = 3
    n_values: int = 10
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    lr: float = 1e-3
    steps: int = 2000  # upper bound on policy iterations
    time_limit: float = 600.0  # seconds; training stops when reached
    prompts_per_step: int = 32
    group_size: int = 8  # GRPO: responses per prompt (PPO uses 1)
    advantage: str = "grpo"  # GRPO: "grpo" (mean/std), "drgrpo" (mean only), "rloo"
    agg: str = "token-mean"
    clip_eps: float = 0.2
    clip_eps_high: float | None = 0.28
    dual_clip: float | None = 3.0
    kl_coef: float = 0.001
    kl_estimator: str = "k3"  # GRPO's loss-term estimator (PPO uses k1 in the reward)
    epochs: int = 1  # PPO: update epochs per batch
    minibatches: int = 1  # PPO: minibatches per epoch
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    eval_every: int = 10
    eval_prompts: int = 512
    target: float = 0.95  # stop once greedy eval success reaches it (None: never)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1  # torch CPU threads while training (restored afterwards); None: keep
    progress: bool = True
    out: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def generate(
    model: TinyCausalLM,
    prompts: torch.Tensor,
    task: SortTask,
    *,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample responses autoregressively.

    Returns ``(tokens [B, P + max_new], mask [B, P + max_new])``: prompt and response in one
    sequence (PAD after the first EOS); ``mask`` is true at the response tokens up to and
    including the EOS — the tokens whose log-probabilities enter the loss.
    """
    B, P = prompts.shape
    seq = prompts
    done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
    mask_cols = []
    # forward in time: one new token per step for every unfinished sequence
    for _ in range(task.max_new):
        logits, _ = model(seq)
        last = logits[:, -1].float()
        if greedy:
            nxt = last.argmax(-1)
        else:
            nxt = torch.multinomial(torch.softmax(last, -1), 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, task.pad), nxt)
        mask_cols.append(~done)
        done = done | (nxt == task.eos)
        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
    mask = torch.cat([torch.zeros(B, P, dtype=torch.bool, device=seq.device), torch.stack(mask_cols, 1)], 1)
    return seq, mask


def _evaluate(model: TinyCausalLM, task: SortTask, prompts: torch.Tensor) -> float:
    model.eval()
    seq, _ = generate(model, prompts, task, greedy=True)
    _, success, _ = task.score(prompts, seq[:, task.prompt_len :])
    model.train()
    return float(success.float().mean())


def _plot(history: list[dict[str, float]], path: pathlib.Path, title: str) -> None:
    require("matplotlib", extra="plots", feature="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        ("score", "mean reward (checker score)"),
        ("success", "success rate"),
        ("kl", "KL(π ‖ π_ref) per response (k1 mean)"),
        ("length", "response length (tokens before EOS)"),
    ]
    for ax, (key, label) in zip(axes.flat, panels):  # one panel per metric
        ax.plot(steps, [h[key] for h in history], lw=1, label="sampled batch")
        if key == "success":
            ev = [(h["step"], h["eval_success"]) for h in history if "eval_success" in h]
            if ev:
                ax.plot(*zip(*ev), "o-", ms=3, label="greedy eval")
            ax.axhline(0.9, color="gray", ls="--", lw=0.8)
            ax.legend()
        ax.set_title(label)
        ax.set_xlabel("policy iteration")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(config: TrainConfig) -> dict[str, Any]:
    """Train by GRPO or PPO; returns ``{"history": [...], "summary": {...}}``.

    ``config.threads`` (default 1) sets torch's CPU threads for the run and is restored on
    return: the tensors are tiny, and on a busy 2-core machine intra-op threading made each step
    ~50x slower than one thread in our measurements (docs/llm/results.md).
    """
    if config.algo not in ("grpo", "ppo"):
        raise ValueError(f"algo must be 'grpo' or 'ppo', got {config.algo!r}")
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config: TrainConfig) -> dict[str, Any]:
    device = torch.device(config.device)
    task = SortTask(config.n_digits, config.n_values)
    torch.manual_seed(config.seed)  # parameter initialisation only; sampling uses `gen`
    gen = torch.Generator(device=device).manual_seed(config.seed)
    model = TinyCausalLM(
        task.vocab, task.max_len, d_model=config.d_model, n_layers=config.n_layers,
        n_heads=config.n_heads, value_head=config.algo == "ppo",
    ).to(device)
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    eval_gen = torch.Generator().manual_seed(10_000 + config.seed)
    eval_prompts = task.prompts(config.eval_prompts, eval_gen, device)
    k = config.group_size if config.algo == "grpo" else 1
    if config.algo == "grpo" and k < 2:
        raise ValueError("group_size must be >= 2 for GRPO")
    adv_fn = {
        "grpo": group_advantages,
        "drgrpo": lambda r: group_advantages(r, normalize_std=False),
        "rloo": rloo_advantages,
    }[config.advantage]
    norm_c = float(task.max_new) if config.agg == "seq-mean-token-sum-norm" else None

    bar = None
    if config.progress:
        require("tqdm", extra="cli", feature="the progress bar (progress=False turns it off)")
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc=f"{config.algo}-toy", unit="it")
    history: list[dict[str, float]] = []
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    first_eval = _evaluate(model, task, eval_prompts)  # before any update
    t0 = time.perf_counter()
    time_to_90: float | None = None
    last_eval = first_eval
    # forward over policy iterations: sample, score, update, log
    for step in range(config.steps):
        prompts = task.prompts(config.prompts_per_step, gen, device).repeat_interleave(k, dim=0)
        model.eval()
        tokens, mask = generate(model, prompts, task, generator=gen)
        model.train()
        score, success, length = task.score(prompts, tokens[:, task.prompt_len :])
        with torch.no_grad():
            logits, old_values = model(tokens)
            old_lp = token_log_probs(logits, tokens, mask)
            ref_lp = token_log_probs(ref(tokens)[0], tokens, mask)
            kl_seq = token_kl(old_lp, ref_lp, mask, "k1").sum(1)

        info: dict[str, torch.Tensor] = {}
        if config.algo == "grpo":
            adv = adv_fn(score.reshape(-1, k).to(old_lp.dtype)).reshape(-1)
            logits, _ = model(tokens)
            lp = token_log_probs(logits, tokens, mask)
            loss, info = token_policy_loss(
                lp, old_lp, adv, mask, mode=config.agg, normalizer=norm_c,
                clip_eps=config.clip_eps, clip_eps_high=config.clip_eps_high, dual_clip=config.dual_clip,
            )
            if config.kl_coef > 0:
                loss = loss + config.kl_coef * kl_loss(
                    lp, ref_lp, mask, estimator=config.kl_estimator, mode=config.agg, normalizer=norm_c
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
        else:
            with torch.no_grad():
                pen = kl_penalty(old_lp, ref_lp, mask, coef=config.kl_coef) if config.kl_coef > 0 else None
                rewards = token_rewards(score.to(old_lp.dtype), mask, kl_penalty=pen)
                # backend "torch": the numba kernel would reset torch's thread count (see results.md)
                adv, returns = token_gae(
                    rewards, old_values, mask, gamma=1.0, lam=config.gae_lambda, backend="torch"
                )
                adv = normalize_advantages(adv, mask=mask)
            B = tokens.shape[0]
            mb = max(1, B // config.minibatches)
            # PPO: several passes over the batch, each in shuffled minibatches
            for _epoch in range(config.epochs):
                perm = torch.randperm(B, generator=gen, device=device)
                for i in range(0, B, mb):
                    idx = perm[i : i + mb]
                    m = mask[idx]
                    logits, values = model(tokens[idx])
                    lp = token_log_probs(logits, tokens[idx], m)
                    pl, info = token_policy_loss(
                        lp, old_lp[idx], adv[idx], m, mode=config.agg, normalizer=norm_c,
                        clip_eps=config.clip_eps, clip_eps_high=config.clip_eps_high,
                        dual_clip=config.dual_clip,
                    )
                    vl = value_loss(values, returns[idx], old_values=old_values[idx], clip_eps=0.2, mask=m)
                    loss = pl + config.vf_coef * vl
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    opt.step()

        elapsed = time.perf_counter() - t0
        row = {
            "step": step,
            "time": elapsed,
            "score": float(score.mean()),
            "success": float(success.float().mean()),
            "kl": float(kl_seq.mean()),
            "length": float(length.float().mean()),
            "loss": float(loss.detach()),
            "clip_fraction": float(info.get("clip_fraction", torch.tensor(math.nan))),
        }
        if step % config.eval_every == 0 or step == config.steps - 1:
            last_eval = _evaluate(model, task, eval_prompts)
            row["eval_success"] = last_eval
            if time_to_90 is None and last_eval >= 0.9:
                time_to_90 = elapsed
        history.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(score=f"{row['score']:.2f}", eval=f"{last_eval:.2f}", kl=f"{row['kl']:.2f}")
        if config.target is not None and last_eval >= config.target:
            break
        if elapsed >= config.time_limit:
            break
    if bar is not None:
        bar.close()
    final_eval = _evaluate(model, task, eval_prompts)
    summary = {
        "algo": config.algo,
        "steps": len(history),
        "seconds": time.perf_counter() - t0,
        "initial_eval_success": first_eval,
        "final_eval_success": final_eval,
        "seconds_to_90": time_to_90,
        "torch_threads": torch.get_num_threads(),
        "load_average_start_end": [load_start, os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan],
        "cpu_count": os.cpu_count(),
        "config": asdict(config),
    }
    if config.out is not None:
        out = pathlib.Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
        _plot(history, out / "plots.png", f"{config.algo}-toy: sort {task.n_digits} digits")
        torch.save(model.state_dict(), out / "model.pt")
    return {"history": history, "summary": summary}
