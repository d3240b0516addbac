"""Learning targets and speed of pgmath's agents (issue 6). Prints the figures; CI runs only smoke tests.

    python benchmarks/agents.py                                   # every target, 5 seeds
    python benchmarks/agents.py --targets ppo-cartpole sb3 --seeds 0 1 --jobs 2
    python benchmarks/agents.py --list
    python benchmarks/agents.py --targets ppo-cartpole --set num_envs=4 n_steps=128 lr=2.5e-4 \
        update_epochs=4 num_minibatches=4 gamma=0.99 gae_lambda=0.95 ent_coef=0.01   # CleanRL's settings

Targets (the environment presets of ``pgmath.agents.presets`` at their step budgets):

* ``ppo-cartpole``  PPO, CartPole-v1: mean return ≥ 475 over 100 evaluation episodes within 100k
  environment steps, for at least 4 of 5 seeds;
* ``a2c-cartpole``, ``reinforce-cartpole``: ≥ 475 within 500k steps;
* ``ppo-acrobot``   PPO, Acrobot-v1: ≥ −100 within 200k steps;
* ``ppo-pendulum``  PPO, Pendulum-v1 (continuous): ≥ −300 within 200k steps;
* ``sb3``           wall clock of pgmath's PPO against Stable-Baselines3's PPO with the same
  hyperparameters (CartPole-v1 preset) and step count, in this process, alternating, one torch
  thread each; prints SB3 time / pgmath time (> 1: pgmath is faster);
* ``determinism``   the same seed twice gives the same learning curve (CPU).

"Within N steps": the policy is evaluated every N/10 steps and at the end. An evaluation is a
10-episode screen; when the screen reaches the target, the decisive 100-episode evaluation runs
(greedy actions, fresh environments seeded 10 000 + i, as ``pgmath eval``). A seed passes when
some 100-episode evaluation at or before N steps reaches the target. The final policy's
100-episode score is printed as well.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

TARGETS = {
    # name: (algo, env, budget, threshold, seeds needed out of 5)
    "ppo-cartpole": ("ppo", "CartPole-v1", 100_000, 475.0, 4),
    "a2c-cartpole": ("a2c", "CartPole-v1", 500_000, 475.0, 4),
    "reinforce-cartpole": ("reinforce", "CartPole-v1", 500_000, 475.0, 4),
    "ppo-acrobot": ("ppo", "Acrobot-v1", 200_000, -100.0, 4),
    "ppo-pendulum": ("ppo", "Pendulum-v1", 200_000, -300.0, 4),
}
OTHER = ("sb3", "determinism")


@dataclass
class SeedResult:
    target: str
    seed: int
    first_hit_step: int | None
    final_mean: float
    final_std: float
    train_seconds: float
    evals: list = field(default_factory=list)  # (step, screen mean, full mean or None)


def run_seed(name: str, seed: int, overrides: dict | None = None, screen: int = 10, full: int = 100,
             n_evals: int = 10) -> SeedResult:
    """Train one seed of a target with periodic evaluations (in a worker process)."""
    torch.set_num_threads(1)
    from pgmath.agents import evaluate, resolve_config, train

    algo, env, budget, thr, _ = TARGETS[name]
    cfg = resolve_config(algo, env, {**(overrides or {}), "seed": seed, "total_steps": budget})
    every = budget / n_evals
    state = {"next": every, "hit": None, "evals": [], "eval_time": 0.0}

    def score(model, obs_norm, k):
        r = evaluate(model, env, episodes=k, seed=10_000, obs_norm=obs_norm,
                     deterministic=cfg.eval_deterministic)
        return float(r.mean()), float(r.std())

    def cb(tr, row):
        if row["step"] < state["next"] and row["step"] < budget:
            return
        t0 = time.perf_counter()
        state["next"] += every
        s, _ = score(tr.model, tr.obs_norm, screen)
        f = None
        if s >= thr and state["hit"] is None:
            f, _ = score(tr.model, tr.obs_norm, full)
            if f >= thr:
                state["hit"] = row["step"]
        state["evals"].append((row["step"], s, f))
        state["eval_time"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    res = train(cfg, None, callback=cb)
    train_s = time.perf_counter() - t0 - state["eval_time"]
    fm, fs = score(res.model, res.obs_norm, full)
    if state["hit"] is None and fm >= thr:
        state["hit"] = res.global_step
    return SeedResult(name, seed, state["hit"], fm, fs, train_s, state["evals"])


def run_targets(names, seeds, jobs, overrides=None):
    tasks = [(n, s) for n in names for s in seeds]
    results = []
    if jobs > 1:
        with cf.ProcessPoolExecutor(jobs) as pool:
            futs = {pool.submit(run_seed, n, s, overrides): (n, s) for n, s in tasks}
            for fut in cf.as_completed(futs):
                results.append(fut.result())
                _print_seed(results[-1])
    else:
        for n, s in tasks:
            results.append(run_seed(n, s, overrides))
            _print_seed(results[-1])
    return results


def _parse_overrides(items: list[str]) -> dict:
    """``["lr=1e-3", "num_envs=4", "norm_obs=true", "max_grad_norm=none"]`` → a dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        elif low == "none":
            out[key] = "none"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def _print_seed(r: SeedResult) -> None:
    hit = f"{r.first_hit_step:>7d}" if r.first_hit_step is not None else "  never"
    print(f"  {r.target:<20s} seed {r.seed}: reached at step {hit}; final 100-episode return "
          f"{r.final_mean:8.1f} ± {r.final_std:6.1f}; train {r.train_seconds:6.1f} s", flush=True)


def summarize(results, seeds) -> list[dict]:
    out = []
    for name in TARGETS:
        rs = [r for r in results if r.target == name]
        if not rs:
            continue
        algo, env, budget, thr, need = TARGETS[name]
        ok = sum(r.first_hit_step is not None for r in rs)
        need_here = math.ceil(need * len(rs) / 5)
        verdict = "PASS" if ok >= need_here else "FAIL"
        line = (f"{algo.upper()} {env}: {ok}/{len(rs)} seeds reach {thr:g} within {budget} steps "
                f"(need {need_here}) — {verdict}; final returns "
                + ", ".join(f"{r.final_mean:.1f}" for r in sorted(rs, key=lambda r: r.seed)))
        print(line)
        out.append({"target": name, "reached": ok, "seeds": len(rs), "verdict": verdict, "line": line})
    return out


# ---------------------------------------------------------------------------------------------
# wall clock against Stable-Baselines3

def _sb3_ppo(cfg):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(cfg.env_id, n_envs=cfg.num_envs, seed=cfg.seed)
    lr = (lambda p: cfg.lr * p) if cfg.anneal_lr else cfg.lr
    return PPO(
        "MlpPolicy", venv, n_steps=cfg.n_steps, batch_size=cfg.num_envs * cfg.n_steps // cfg.num_minibatches,
        n_epochs=cfg.update_epochs, learning_rate=lr, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_coef, clip_range_vf=cfg.vf_clip, normalize_advantage=cfg.norm_adv,
        ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm or 1e10,
        target_kl=cfg.target_kl, seed=cfg.seed, device="cpu", verbose=0,
        policy_kwargs=dict(net_arch=dict(pi=list(cfg.hidden), vf=list(cfg.hidden)),
                           activation_fn=torch.nn.Tanh, ortho_init=cfg.ortho_init),
    )


def sb3_ratio(steps: int, repeats: int, env: str = "CartPole-v1", overrides: dict | None = None) -> dict:
    torch.set_num_threads(1)
    from pgmath.agents import resolve_config, train

    cfg = resolve_config("ppo", env, {**(overrides or {}), "total_steps": steps})
    if cfg.norm_obs or cfg.norm_reward:
        raise SystemExit("the SB3 comparison uses a preset without observation/reward normalisation")
    ours, theirs = [], []
    # warm-up (imports, numba cache, first-call costs) for both, untimed
    train(cfg.replace(total_steps=cfg.num_envs * cfg.n_steps), None)
    _sb3_ppo(cfg).learn(cfg.num_envs * cfg.n_steps)
    for i in range(repeats):
        c = cfg.replace(seed=i)
        t0 = time.perf_counter()
        train(c, None)
        ours.append(time.perf_counter() - t0)
        m = _sb3_ppo(c)
        t0 = time.perf_counter()
        m.learn(steps)
        theirs.append(time.perf_counter() - t0)
        print(f"  repeat {i}: pgmath {ours[-1]:.2f} s, SB3 {theirs[-1]:.2f} s", flush=True)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    line = (f"PPO {env}, {steps} steps, same hyperparameters, 1 torch thread: pgmath {mo:.2f} s "
            f"({steps / mo:.0f} steps/s), Stable-Baselines3 {mt:.2f} s ({steps / mt:.0f} steps/s); "
            f"SB3 / pgmath = {mt / mo:.2f}x (median of {repeats})")
    print(line)
    return {"pgmath_s": ours, "sb3_s": theirs, "ratio": mt / mo, "line": line}


def determinism(steps: int) -> dict:
    torch.set_num_threads(1)
    from pgmath.agents import resolve_config, train

    cfg = resolve_config("ppo", "CartPole-v1", {"total_steps": steps, "seed": 7})
    curves = []
    for _ in range(2):
        res = train(cfg, None)
        curves.append(([r["return_mean100"] for r in res.rows], [e["return"] for e in res.episodes],
                       torch.cat([p.detach().reshape(-1) for p in res.model.parameters()])))
    same = (curves[0][0] == curves[1][0] or np.allclose(curves[0][0], curves[1][0], equal_nan=True)) \
        and curves[0][1] == curves[1][1] and torch.equal(curves[0][2], curves[1][2])
    line = (f"determinism: PPO CartPole-v1 seed 7, {steps} steps twice: "
            f"{'identical' if same else 'DIFFERENT'} learning curves and parameters")
    print(line)
    return {"identical": bool(same), "line": line}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=[*TARGETS, *OTHER], choices=[*TARGETS, *OTHER])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    p.add_argument("--sb3-steps", type=int, default=100_000)
    p.add_argument("--sb3-repeats", type=int, default=3)
    p.add_argument("--determinism-steps", type=int, default=20_000)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override preset hyperparameters of the learning targets and of the SB3 "
                        "comparison (e.g. lr=2.5e-4)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    args = p.parse_args(argv)
    if args.list:
        for k, v in TARGETS.items():
            print(k, v)
        print(*OTHER)
        return 0
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads available; started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    report: dict = {"argv": sys.argv}
    learn = [t for t in args.targets if t in TARGETS]
    overrides = _parse_overrides(args.set)
    if overrides:
        print(f"overrides of the presets: {overrides}")
    if learn:
        results = run_targets(learn, args.seeds, args.jobs, overrides)
        report["seeds"] = [asdict(r) for r in results]
        report["summary"] = summarize(results, args.seeds)
    if "sb3" in args.targets:
        report["sb3"] = sb3_ratio(args.sb3_steps, args.sb3_repeats, overrides=overrides)
    if "determinism" in args.targets:
        report["determinism"] = determinism(args.determinism_steps)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
