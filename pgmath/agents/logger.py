"""Run logs: CSV files, optional TensorBoard, a progress bar, and the learning-curve PNG.

Files in the run directory:

* ``progress.csv`` — one row per update (:data:`UPDATE_COLUMNS`);
* ``episodes.csv`` — one row per finished training episode (:data:`EPISODE_COLUMNS`);
* ``learning_curve.png`` — episode returns against environment steps, with a moving average;
* TensorBoard event files under ``tb/`` when ``torch.utils.tensorboard`` can be imported.

On ``--resume`` the CSV files are cut back to the rows the checkpoint had written, so a resumed
run's logs equal those of an uninterrupted run (apart from the wall-clock columns).
"""

from __future__ import annotations

import csv
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from pgmath.optional import require

__all__ = ["EPISODE_COLUMNS", "UPDATE_COLUMNS", "RunLogger", "plot_learning_curve", "read_csv"]

UPDATE_COLUMNS: tuple[str, ...] = (
    "update", "step", "time_s", "steps_per_s", "lr", "return_mean100", "return_batch",
    "length_mean100", "episodes", "policy_loss", "value_loss", "entropy", "approx_kl",
    "clip_fraction", "explained_variance", "grad_norm", "minibatch_steps",
)
EPISODE_COLUMNS: tuple[str, ...] = ("step", "rank", "env", "return", "length", "terminated")
#: Columns that depend on the wall clock (excluded when comparing runs for determinism).
TIMING_COLUMNS = frozenset({"time_s", "steps_per_s"})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def read_csv(path: str | pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _truncate_csv(path: pathlib.Path, columns: Sequence[str], keep: int) -> None:
    rows = read_csv(path)[:keep] if path.exists() else []
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([r[c] for c in columns])


class RunLogger:
    """Writes the logs of one run (a no-op when ``out_dir`` is None or on ranks other than 0)."""

    def __init__(
        self,
        out_dir: pathlib.Path | None,
        *,
        total_steps: int,
        initial_step: int = 0,
        keep_updates: int | None = None,
        keep_episodes: int | None = None,
        progress: bool = True,
        tensorboard: bool = True,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled and out_dir is not None
        self.out_dir = out_dir
        self._bar = None
        self._tb = None
        if enabled and progress:
            require("tqdm", extra="agents", feature="the progress bar")
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_steps, initial=initial_step, unit="step", unit_scale=True,
                dynamic_ncols=True, file=sys.stderr, smoothing=0.1,
            )
        if not self.enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.updates_path = out_dir / "progress.csv"
        self.episodes_path = out_dir / "episodes.csv"
        for path, cols, keep in (
            (self.updates_path, UPDATE_COLUMNS, keep_updates or 0),
            (self.episodes_path, EPISODE_COLUMNS, keep_episodes or 0),
        ):
            _truncate_csv(path, cols, keep)
        self._uf = open(self.updates_path, "a", newline="")
        self._ef = open(self.episodes_path, "a", newline="")
        self._uw = csv.writer(self._uf)
        self._ew = csv.writer(self._ef)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(out_dir / "tb"), purge_step=initial_step or None)

    def log_episodes(self, rows: Sequence[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        for r in rows:
            self._ew.writerow([_fmt(r[c]) for c in EPISODE_COLUMNS])
            if self._tb is not None:
                self._tb.add_scalar("episode/return", r["return"], r["step"])
        self._ef.flush()

    def log_update(self, row: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.n = row["step"]
            ret = row["return_mean100"]
            self._bar.set_postfix_str(
                f"return(100)={ret:.1f}" if not math.isnan(ret) else "return(100)=n/a", refresh=False
            )
            self._bar.refresh()
        if not self.enabled:
            return
        self._uw.writerow([_fmt(row.get(c, float("nan"))) for c in UPDATE_COLUMNS])
        self._uf.flush()
        if self._tb is not None:
            for c in UPDATE_COLUMNS:
                if c not in ("update", "step") and isinstance(row.get(c), (int, float)):
                    self._tb.add_scalar(f"train/{c}", row[c], row["step"])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.enabled:
            self._uf.close()
            self._ef.close()
            if self._tb is not None:
                self._tb.close()


def plot_learning_curve(
    episodes_csv: str | pathlib.Path, out_png: str | pathlib.Path, *, title: str = "", window: int = 100
) -> pathlib.Path:
    """Episode return against environment step (dots) with a moving average over ``window``."""
    require("matplotlib", extra="plots", feature="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_csv(episodes_csv)
    steps = np.array([float(r["step"]) for r in rows])
    rets = np.array([float(r["return"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if len(rets):
        ax.plot(steps, rets, ".", ms=2, alpha=0.3, color="tab:blue", label="episode return")
        order = np.argsort(steps, kind="stable")
        steps, rets = steps[order], rets[order]
        c = np.concatenate([[0.0], np.cumsum(rets)])
        i = np.arange(1, len(rets) + 1)
        lo = np.maximum(i - window, 0)
        ma = (c[i] - c[lo]) / (i - lo)  # mean of the last (up to) `window` episodes
        ax.plot(steps, ma, color="tab:red", lw=2, label=f"mean of the last {window}")
        ax.legend(loc="lower right")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = pathlib.Path(out_png)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
