"""``pgmath train grpo-toy`` and ``pgmath train ppo-toy``: the sorting task end to end on CPU."""

from __future__ import annotations

import argparse
import json

from pgmath.llm.aggregate import AGGREGATION_MODES

__all__ = ["add_train_parsers"]

_DEFAULTS = {
    "grpo": {"lr": 1e-3, "kl_coef": 0.001, "epochs": 1, "minibatches": 1, "prompts_per_step": 32},
    "ppo": {"lr": 1e-3, "kl_coef": 0.01, "epochs": 2, "minibatches": 2, "prompts_per_step": 256},
}


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _add_common(p: argparse.ArgumentParser, algo: str) -> None:
    d = _DEFAULTS[algo]
    p.add_argument("--out", default=f"runs/{algo}-toy", help="directory for metrics.json, plots.png, model.pt")
    p.add_argument("--steps", type=int, default=3000, help="maximum policy iterations")
    p.add_argument("--time-limit", type=float, default=600.0, help="stop after this many seconds")
    p.add_argument("--target", type=_optional_float, default=0.95,
                   help="stop when greedy eval success reaches this ('none': never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the tensors are tiny; 0 = torch's default)")
    p.add_argument("--n-digits", type=int, default=3)
    p.add_argument("--n-values", type=int, default=10)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--prompts-per-step", type=int, default=d["prompts_per_step"])
    p.add_argument("--agg", choices=AGGREGATION_MODES, default="token-mean")
    p.add_argument("--clip-eps", type=float, default=0.2)
    p.add_argument("--clip-eps-high", type=_optional_float, default=0.28)
    p.add_argument("--dual-clip", type=_optional_float, default=3.0)
    p.add_argument("--kl-coef", type=float, default=d["kl_coef"])
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    from pgmath.llm.train import TrainConfig, train

    cfg = TrainConfig(
        algo=args.llm_algo,
        n_digits=args.n_digits,
        n_values=args.n_values,
        d_model=args.d_model,
        n_layers=args.n_layers,
        lr=args.lr,
        steps=args.steps,
        time_limit=args.time_limit,
        prompts_per_step=args.prompts_per_step,
        agg=args.agg,
        clip_eps=args.clip_eps,
        clip_eps_high=args.clip_eps_high,
        dual_clip=args.dual_clip,
        kl_coef=args.kl_coef,
        eval_every=args.eval_every,
        target=args.target,
        seed=args.seed,
        device=args.device,
        threads=args.threads or None,
        progress=not args.no_progress,
        out=args.out,
        group_size=getattr(args, "group_size", 8),
        advantage=getattr(args, "advantage", "grpo"),
        kl_estimator=getattr(args, "kl_estimator", "k3"),
        epochs=getattr(args, "epochs", 1),
        minibatches=getattr(args, "minibatches", 1),
        gae_lambda=getattr(args, "gae_lambda", 0.95),
    )
    result = train(cfg)
    s = result["summary"]
    print(json.dumps({k: v for k, v in s.items() if k != "config"}, indent=1))
    print(f"wrote {args.out}/metrics.json, {args.out}/plots.png, {args.out}/model.pt")
    return 0 if s["final_eval_success"] >= 0.9 else 1


def add_train_parsers(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``grpo-toy`` and ``ppo-toy`` to ``pgmath train``."""
    g = train_subparsers.add_parser(
        "grpo-toy", help="GRPO on a tiny transformer: sort the prompt's digits (CPU, minutes)"
    )
    _add_common(g, "grpo")
    g.add_argument("--group-size", type=int, default=8, help="responses per prompt (K >= 2)")
    g.add_argument("--advantage", choices=("grpo", "drgrpo", "rloo"), default="grpo")
    g.add_argument("--kl-estimator", choices=("k1", "k2", "k3"), default="k3")
    g.set_defaults(func=_run, llm_algo="grpo")

    p = train_subparsers.add_parser(
        "ppo-toy", help="PPO with a value head and token-level GAE on the same task (CPU, minutes)"
    )
    _add_common(p, "ppo")
    p.add_argument("--epochs", type=int, default=_DEFAULTS["ppo"]["epochs"])
    p.add_argument("--minibatches", type=int, default=_DEFAULTS["ppo"]["minibatches"])
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.set_defaults(func=_run, llm_algo="ppo")
