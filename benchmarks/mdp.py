"""Exact-MDP speed: the exact policy gradient and the episode sampler against named baselines.

1. Exact gradient, random MDP S = 2000, A = 8, float64 (target: < 1 s on 2 CPU cores):
     theorem        pgmath: d(s) π(a|s) A(s, a), one LU factorization shared by V and d
     autograd       pgmath: reverse-mode autograd through torch.linalg.solve
     explicit-inv   baseline: M⁻¹ = inv(I - γP_π) formed explicitly, V = M⁻¹ r, d = M⁻ᵀ μ₀
   Also checks that theorem == autograd == explicit-inv (max |err| printed).
2. Sampler, random MDP S = 16, A = 4, γ = 0.99, continuing (target: >= 5 million transitions/s
   on 2 CPU cores), and the 4 × 4 gridworld (episodic, random policy):
     pgmath         sample_episodes, all episodes in lockstep (100 000 at a time)
     python-loop    baseline: sample_episodes_reference, one episode at a time (numpy Generator)

Run:  python benchmarks/mdp.py            (CPU; add --device cuda on a GPU machine)
      python benchmarks/mdp.py --quick    (smaller sizes, a smoke run)
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

from pgmath.mdp import (
    TabularMDP,
    gridworld,
    random_mdp,
    sample_episodes,
    sample_episodes_reference,
)
from pgmath.tables import add_format_argument, print_table

F64 = torch.float64


def timeit(fn, repeats: int) -> float:
    """Mean wall time per call over ``repeats`` calls after a warm-up (torch.utils.benchmark
    synchronizes CUDA around the block)."""
    fn()
    return Timer(stmt="fn()", globals={"fn": fn}).timeit(repeats).mean


def explicit_inverse_gradient(mdp: TabularMDP, logits: torch.Tensor) -> torch.Tensor:
    """Baseline: the softmax policy gradient with an explicit inverse (what pgmath avoids)."""
    pi = torch.softmax(logits, -1)
    n = torch.nonzero(~mdp.terminal).squeeze(1)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.P)[n][:, n]
    M_inv = torch.linalg.inv(torch.eye(n.numel(), dtype=mdp.dtype, device=mdp.device) - mdp.gamma * P_pi)
    V = torch.zeros(mdp.num_states, dtype=mdp.dtype, device=mdp.device)
    d = torch.zeros_like(V)
    V[n] = M_inv @ (pi * mdp.R).sum(-1)[n]
    d[n] = M_inv.T @ mdp.mu0[n]
    Q = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)
    return d[:, None] * pi * (Q - V[:, None])


def bench_gradient(device: torch.device, quick: bool, fmt: str) -> None:
    S, A = (500, 8) if quick else (2000, 8)
    g = torch.Generator(device=device).manual_seed(0)
    mdp = random_mdp(S, A, generator=g, gamma=0.99)
    logits = torch.randn(S, A, generator=g, device=device, dtype=F64)
    reps = 3 if quick else 5
    t_thm = timeit(lambda: mdp.exact_policy_gradient(logits, method="theorem"), reps)
    t_ad = timeit(lambda: mdp.exact_policy_gradient(logits, method="autograd"), reps)
    t_inv = timeit(lambda: explicit_inverse_gradient(mdp, logits), reps)
    a = mdp.exact_policy_gradient(logits, method="theorem")
    b = mdp.exact_policy_gradient(logits, method="autograd")
    c = explicit_inverse_gradient(mdp, logits)
    err = max(float((a - b).abs().max()), float((a - c).abs().max()))
    verdict = "PASS" if t_thm < 1.0 else "FAIL"
    print_table(
        ("method", f"time per call (s, mean of {reps})", "speed-up vs explicit-inv", "target"),
        [("theorem (pgmath)", f"{t_thm:.3f}", f"{t_inv / t_thm:.2f}x", f"< 1 s: {verdict}"),
         ("autograd (pgmath)", f"{t_ad:.3f}", f"{t_inv / t_ad:.2f}x", ""),
         ("explicit-inv (baseline)", f"{t_inv:.3f}", "1.00x", "")],
        title=f"exact policy gradient, S = {S}, A = {A}, float64, {device}",
        caption=f"max |theorem - autograd|, |theorem - explicit-inv| = {err:.1e}", fmt=fmt,
    )


def bench_sampler(device: torch.device, quick: bool, fmt: str) -> None:
    g = torch.Generator(device=device).manual_seed(1)
    mdp = random_mdp(16, 4, generator=g, gamma=0.99)
    pi = mdp.policy(torch.randn(16, 4, generator=g, device=device, dtype=F64))
    N, T = (20_000, 50) if quick else (100_000, 100)
    reps = 3 if quick else 5
    t_fast = timeit(lambda: sample_episodes(mdp, pi, N, T, generator=g), reps)
    n_ref = 50 if quick else 200
    mdp_cpu, pi_cpu = mdp.to(device="cpu"), pi.cpu()
    t_ref = timeit(lambda: sample_episodes_reference(mdp_cpu, pi_cpu, n_ref, T, seed=0), 1)
    fast, slow = N * T / t_fast, n_ref * T / t_ref

    grid = gridworld(device=device)
    uniform = torch.full((16, 4), 0.25, dtype=F64, device=device)
    ep = sample_episodes(grid, uniform, N, 1000, generator=g)
    t_grid = timeit(lambda: sample_episodes(grid, uniform, N, 1000, generator=g), reps)
    grid_steps = int(ep.lengths.sum())

    verdict = "PASS" if fast >= 5e6 else "FAIL"
    print_table(
        ("MDP", "sampler", "episodes x steps", "transitions/s", "speed-up vs python-loop", "target"),
        [("random S=16 A=4", "pgmath", f"{N} x {T}", f"{fast / 1e6:.1f} M", f"{fast / slow:.0f}x", f">= 5 M/s: {verdict}"),
         ("random S=16 A=4", "python-loop (baseline)", f"{n_ref} x {T}", f"{slow / 1e6:.3f} M", "1x", ""),
         ("gridworld 4x4, random π", "pgmath", f"{N} episodes", f"{grid_steps / t_grid / 1e6:.1f} M", "", "")],
        title=f"episode sampler, {device}", fmt=fmt,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    add_format_argument(parser)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads = {torch.get_num_threads()}, device = {device}")
    bench_gradient(device, args.quick, args.format)
    bench_sampler(device, args.quick, args.format)


if __name__ == "__main__":
    main()
