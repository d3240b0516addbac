"""``pgmath train {reinforce,a2c,ppo}`` and ``pgmath eval``.

    pgmath train ppo --env CartPole-v1 --steps 100000 --seed 0 --device cpu --out runs/ppo
    pgmath train ppo --out runs/ppo --resume             # continue runs/ppo/last.pt exactly
    torchrun --nproc_per_node 2 -m pgmath train ppo ...  # data-parallel PPO
    pgmath eval runs/ppo/final.pt --episodes 100

Every hyperparameter of :class:`pgmath.agents.config.AgentConfig` that applies to the algorithm
is a flag (``--lr``, ``--num-envs``, ``--norm-obs/--no-norm-obs``, ``--max-grad-norm none``, …);
a flag not given keeps the environment's preset (:mod:`pgmath.agents.presets`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys

from pgmath.agents.config import ALGOS, hyperparameter_fields

__all__ = ["add_commands", "add_train_parsers"]

_HELP = {
    "reinforce": "REINFORCE (Monte-Carlo policy gradient) with an optional learned baseline",
    "a2c": "synchronous advantage actor-critic (A2C)",
    "ppo": "proximal policy optimisation (clipped surrogate), data-parallel under torchrun",
}


def _optional_float(s: str) -> float | str:
    if s.lower() == "none":
        return "none"
    return float(s)


def _add_hyperparameters(p: argparse.ArgumentParser, algo: str) -> None:
    g = p.add_argument_group("hyperparameters (default: the environment's preset)")
    for f in hyperparameter_fields(algo):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata["help"]
        kw: dict = {"dest": f.name, "default": None, "help": help_}
        ftype = str(f.type)
        if isinstance(f.default, bool):
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif "tuple" in ftype:
            g.add_argument(flag, type=int, nargs="+", metavar="N", **kw)
        elif "None" in ftype and "float" in ftype:
            g.add_argument(flag, type=_optional_float, metavar="X|none", **kw)
        elif "None" in ftype and "int" in ftype:
            g.add_argument(flag, type=int, metavar="N", **kw)
        elif isinstance(f.default, int):
            g.add_argument(flag, type=int, metavar="N", **kw)
        elif isinstance(f.default, float):
            g.add_argument(flag, type=float, metavar="X", **kw)
        else:
            g.add_argument(flag, choices=f.metadata.get("choices"), **kw)


def add_train_parsers(train_subparsers) -> None:
    """Add ``reinforce``, ``a2c`` and ``ppo`` to ``pgmath train``."""
    for algo in ALGOS:
        p = train_subparsers.add_parser(algo, help=_HELP[algo], description=_HELP[algo])
        p.add_argument("--env", default="CartPole-v1", help="gymnasium id (default: CartPole-v1)")
        p.add_argument("--steps", type=int, default=None,
                       help="environment steps, all ranks together (default: the preset's budget)")
        p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
        p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
        p.add_argument("--out", type=pathlib.Path, default=None,
                       help="run directory (default: runs/ALGO-ENV-sSEED)")
        p.add_argument("--resume", action="store_true", help="continue OUT/last.pt exactly")
        p.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                       help="stop with a checkpoint after this many steps (continue with --resume)")
        p.add_argument("--save-every", type=int, default=None, metavar="UPDATES",
                       help="checkpoint every this many updates (default: ~20 per run)")
        p.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads (default: 1, fastest for these small networks)")
        p.add_argument("--eval-episodes", type=int, default=0, metavar="K",
                       help="after training, evaluate K episodes and print mean ± std")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        _add_hyperparameters(p, algo)
        p.set_defaults(func=_train_command, algo=algo)


def add_commands(subparsers) -> None:
    """Add ``pgmath eval``."""
    p = subparsers.add_parser("eval", help="evaluate an agent checkpoint",
                              description="Run K episodes of a checkpoint's policy; print mean ± std.")
    p.add_argument("checkpoint", type=pathlib.Path, help="a .pt file written by pgmath train")
    p.add_argument("--episodes", type=int, default=100, help="episodes K (default: 100)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation envs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of greedy")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    p.set_defaults(func=_eval_command)


def _overrides(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name, None) for f in hyperparameter_fields(args.algo)}


def _train_command(args: argparse.Namespace) -> int:
    import torch

    from pgmath.agents.distributed import Comm
    from pgmath.agents.evaluate import evaluate
    from pgmath.agents.presets import preset, resolve_config
    from pgmath.agents.train import train

    torch.set_num_threads(max(1, args.threads))
    overrides = _overrides(args)
    overrides["seed"] = args.seed
    overrides["device"] = args.device
    out = args.out or pathlib.Path("runs") / f"{args.algo}-{args.env}-s{args.seed}"
    steps = args.steps
    if steps is None and args.resume and (out / "last.pt").is_file():
        from pgmath.agents.checkpoint import load_checkpoint

        steps = load_checkpoint(out / "last.pt")["config"]["total_steps"]  # the run's own budget
    if steps is None:
        steps = preset(args.algo, args.env).get("total_steps")
    overrides["total_steps"] = steps
    try:
        cfg = resolve_config(args.algo, args.env, overrides)
    except ValueError as exc:
        print(f"pgmath train {args.algo}: {exc}", file=sys.stderr)
        return 2
    comm = Comm.from_env(cfg.device)
    rank0 = comm is None or comm.rank == 0
    if args.resume and not (out / "last.pt").is_file():
        print(f"pgmath train: nothing to resume in {out} (no last.pt)", file=sys.stderr)
        return 2
    if rank0 and args.resume:
        print(f"resuming {out / 'last.pt'} with its own configuration (total_steps={cfg.total_steps})",
              file=sys.stderr)
    elif rank0:
        print(f"{cfg.algo} on {cfg.env_id}: {json.dumps(cfg.to_dict())}", file=sys.stderr)
    try:
        res = train(cfg, out, resume=args.resume, stop_after=args.stop_after,
                    save_every=args.save_every, progress=not args.no_progress and rank0, comm=comm)
        if rank0:
            print(f"trained {res.global_step} steps; logs and checkpoints in {out}")
            if args.eval_episodes > 0 and res.global_step >= res.config.total_steps:
                rets = evaluate(res.model, res.config.env_id, episodes=args.eval_episodes,
                                obs_norm=res.obs_norm, deterministic=res.config.eval_deterministic,
                                max_episode_steps=res.config.max_episode_steps)
                print(_summary(rets))
    finally:
        if comm is not None:
            comm.close()
    return 0


def _summary(rets) -> str:
    std = float(rets.std(ddof=1)) if len(rets) > 1 else 0.0
    return f"return over {len(rets)} episodes: {float(rets.mean()):.2f} ± {std:.2f} (mean ± std)"


def _eval_command(args: argparse.Namespace) -> int:
    from pgmath.agents.evaluate import evaluate, load_agent

    if not os.path.isfile(args.checkpoint):
        print(f"pgmath eval: no such file: {args.checkpoint}", file=sys.stderr)
        return 2
    try:
        cfg, model, obs_norm = load_agent(args.checkpoint, args.device)
        rets = evaluate(model, cfg.env_id, episodes=args.episodes, seed=args.seed, obs_norm=obs_norm,
                        deterministic=not args.stochastic, max_episode_steps=cfg.max_episode_steps,
                        device=args.device)
    except ValueError as exc:
        print(f"pgmath eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        std = float(rets.std(ddof=1)) if len(rets) > 1 else math.nan
        print(json.dumps({"env": cfg.env_id, "episodes": len(rets), "mean": float(rets.mean()),
                          "std": std, "returns": rets.tolist()}))
    else:
        print(f"{cfg.algo} on {cfg.env_id}: " + _summary(rets))
    return 0
