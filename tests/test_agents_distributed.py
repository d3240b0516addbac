"""Data-parallel PPO: one update on W = 2 ranks equals the single-process update on the combined batch.

Two CPU processes (gloo, ``torch.multiprocessing.spawn``) each hold half of a float64 rollout
(envs 0–2 and 3–5 of a ``[T, 6]`` batch) and run :func:`pgmath.agents.ppo.ppo_update` with a
:class:`~pgmath.agents.distributed.Comm`; a single process runs it on the whole batch. Three
epochs × four minibatches with per-minibatch advantage normalisation, value clipping, global
gradient-norm clipping, an entropy term and the KL early-stop statistic all have to agree for the
parameters to match. Tolerance 1e-10 in float64: the only difference is the order of the
floating-point sums (two partial gradients added by ``all_reduce`` instead of one sum), whose
effect after 12 Adam steps is ~1e-15. The power of the comparison is shown by updates that must
differ (half of the batch; another minibatch shuffle): they move the parameters by > 1e-4.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from pgmath.agents import resolve_config
from pgmath.agents.networks import ActorCritic
from pgmath.agents.ppo import ppo_update
from pgmath.agents.rollout import RolloutBuffer

T, N_LOCAL, WORLD = 8, 3, 2
F64 = torch.float64


def _cfg():
    return resolve_config("ppo", "CartPole-v1", {
        "num_envs": N_LOCAL, "n_steps": T, "num_minibatches": 4, "update_epochs": 3, "lr": 3e-3,
        "vf_clip": 0.2, "max_grad_norm": 0.5, "ent_coef": 0.01, "target_kl": 0.05, "norm_adv": True,
    })


def _model():
    m = ActorCritic(4, 2, True, generator=torch.Generator().manual_seed(11)).to(F64)
    return m, torch.optim.Adam(m.parameters(), lr=3e-3, eps=1e-5)


def _combined_batch(model) -> RolloutBuffer:
    g = torch.Generator().manual_seed(5)
    n = N_LOCAL * WORLD
    obs = torch.randn(T, n, 4, generator=g, dtype=F64)
    actions = torch.randint(0, 2, (T, n), generator=g)
    with torch.no_grad():
        flat = obs.reshape(-1, 4)
        logp = model.log_prob(model.policy_params(flat), actions.reshape(-1)).reshape(T, n)
        values = model.value(flat).reshape(T, n)
    term = torch.rand(T, n, generator=g) < 0.15
    trunc = (torch.rand(T, n, generator=g) < 0.1) & ~term
    return RolloutBuffer(
        obs=obs, actions=actions, log_probs=logp, values=values,
        next_values=torch.randn(T, n, generator=g, dtype=F64), rewards=torch.randn(T, n, generator=g, dtype=F64),
        terminated=term, truncated=trunc,
    )


def _slice(b: RolloutBuffer, lo: int, hi: int) -> RolloutBuffer:
    return RolloutBuffer(**{k: getattr(b, k)[:, lo:hi] for k in
                      ("obs", "actions", "log_probs", "values", "next_values", "rewards", "terminated", "truncated")})


def _update(batch, comm=None, shuffle_seed=0):
    model, opt = _model()
    stats = ppo_update(model, opt, batch, _cfg(), shuffle_generator=torch.Generator().manual_seed(shuffle_seed),
                       comm=comm)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), stats


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from pgmath.agents.distributed import Comm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model, _ = _model()
        local = _slice(_combined_batch(model), rank * N_LOCAL, (rank + 1) * N_LOCAL)
        params, stats = _update(local, Comm(rank, WORLD))
        torch.save({"params": params, "steps": stats["minibatch_steps"]}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.barrier()  # (no destroy_process_group: see Comm.close; the child exits right after)


def test_two_rank_update_equals_single_process_update_on_the_combined_batch(tmp_path):
    # fork: the children reuse the imported torch instead of importing it again (seconds saved)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True,
                       start_method=method)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    model, _ = _model()
    batch = _combined_batch(model)
    single, stats = _update(batch)
    assert torch.equal(r0["params"], r1["params"])  # the ranks stay in sync
    assert r0["steps"] == stats["minibatch_steps"] >= 2
    err = (r0["params"] - single).abs().max().item()
    assert err < 1e-10, err
    # power: updates that must differ do, by many orders of magnitude more than the tolerance
    init = torch.cat([p.detach().reshape(-1) for p in _model()[0].parameters()])
    assert (single - init).abs().max() > 1e-3
    half, _ = _update(_slice(batch, 0, N_LOCAL))
    assert (half - single).abs().max() > 1e-4
    reshuffled, _ = _update(batch, shuffle_seed=1)
    assert (reshuffled - single).abs().max() > 1e-4


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun smoke test on POSIX only")
def test_torchrun_cli_smoke(tmp_path):
    """``torchrun --nproc_per_node 2 -m pgmath train ppo`` trains, logs and checkpoints on rank 0."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pgmath", "train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--out", str(out),
           "--no-progress", "--num-envs", "2", "--n-steps", "32", "--num-minibatches", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                              cwd=pathlib.Path(__file__).resolve().parents[1])

    proc = run()
    if proc.returncode != 0 and "SIGABRT" in proc.stderr and "trained 512 steps" in proc.stdout:
        # torch 2.13's gloo teardown aborts a rank at interpreter exit about once in 60 runs, after
        # the work is done (pgmath/agents/distributed.py::close); one rerun, which must pass
        proc = run()
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    ck = torch.load(out / "final.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["progress"]["global_step"] == 512
    assert len(ck["ranks"]) == 2
    assert (out / "learning_curve.png").is_file()


# tiny networks: one torch thread per test (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")
