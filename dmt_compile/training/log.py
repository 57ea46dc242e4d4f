"""`TrainingLog`: one readable progress line per K steps of a distributed run, printed once (rank 0).

    log = TrainingLog(dist_model, total_steps=1000, every=10)
    for step in range(start, 1000):
        ...; loss.backward(); opt.step()
        log.step(step + 1, loss, samples=local_batch_size)     # every rank calls it (collective every K steps)
    log.close()                                                 # the summary, on rank 0

Each logged line has the loss (mean over ranks and steps since the last line), the step time,
samples/s over the whole world, and the bytes per step that crossed hosts in the tower exchanges
(`cross` traffic) next to the gradient all-reduce traffic. Everything is summed over ranks with one
small all-reduce per logged step. On a terminal a progress bar (`printing.progress`: tqdm when
installed, else a text bar) shows the same numbers; in logs there are plain lines only.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any

import torch

from dmt_compile.printing.progress import ProgressBar
from dmt_compile.runtime.collectives import all_reduce_
from dmt_compile.runtime.comm_stats import get_comm_stats

__all__ = ["TrainingLog", "human_bytes"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _traffic() -> tuple[int, int]:
    """(bytes this rank sent in cross-host tower exchanges, bytes it sent synchronising gradients)."""
    stats = get_comm_stats()
    sync = sum(c["bytes_sent"] for k, c in stats.snapshot(by_op=True).items() if k.rpartition("/")[2].endswith("grads"))
    return stats.get("cross").bytes_sent, sync


class TrainingLog:
    """Progress of a distributed training run (module docstring)."""

    def __init__(self, model: Any, total_steps: int, every: int = 1, stream: IO[str] | None = None,
                 progress: bool | None = None, first_step: int = 0):
        self.model, self.total, self.every = model, total_steps, max(1, every)
        self.stream = stream or sys.stdout
        self.rank, self.world = model.rank, model.topology.world_size
        self.first_step = first_step
        self._window = torch.zeros(5, dtype=torch.float64)  # loss sum, steps, samples, cross bytes, sync bytes
        self._totals = torch.zeros(5, dtype=torch.float64)
        self._last_traffic = _traffic()
        self._t0 = self._t_last = time.perf_counter()
        self._first_loss: float | None = None
        self._last_loss: float | None = None
        self._bar = self._make_bar(progress)

    def _make_bar(self, progress: bool | None) -> ProgressBar | None:
        """Rank 0's bar (`printing.progress`: tqdm or the text bar, on a terminal unless `progress` says)."""
        if self.rank != 0:
            return None
        return ProgressBar("train", self.total, stream=self.stream, enabled=progress, unit="step",
                           initial=self.first_step)

    def _print(self, line: str) -> None:
        if self.rank != 0:
            return
        if self._bar is not None:
            self._bar.write(line)

    def step(self, step: int, loss: torch.Tensor | float, samples: int) -> None:
        """Record step `step` (1-based) of this rank; every K steps (and at the last) print a line."""
        cross, sync = _traffic()
        self._window += torch.tensor([float(loss), 1.0, float(samples), cross - self._last_traffic[0],
                                      sync - self._last_traffic[1]], dtype=torch.float64)
        self._last_traffic = (cross, sync)
        if self._bar is not None:
            self._bar.update(1)
        if step % self.every and step != self.total:
            return
        now = time.perf_counter()
        window = all_reduce_(self._window.clone(), self.model.groups.world, "world", op="train_log")
        elapsed, self._t_last = now - self._t_last, now
        self._totals += window
        self._window.zero_()
        steps = window[1].item() / self.world
        loss_mean = window[0].item() / max(window[1].item(), 1)
        self._first_loss = loss_mean if self._first_loss is None else self._first_loss
        self._last_loss = loss_mean
        rate = window[2].item() / max(elapsed, 1e-9)
        line = (f"step {step:>{len(str(self.total))}}/{self.total}  loss {loss_mean:.4f}  "
                f"{1000 * elapsed / max(steps, 1):.1f} ms/step  {rate:,.0f} samples/s  "
                f"cross-host {human_bytes(window[3].item() / max(steps, 1))}/step  "
                f"grad sync {human_bytes(window[4].item() / max(steps, 1))}/step")
        if self._bar is not None:
            self._bar.set(self._bar.n, f"loss {loss_mean:.4f}")
        self._print(line)

    def close(self, note: str = "") -> str:
        """Print (rank 0) and return the run's summary."""
        if self._bar is not None:
            self._bar.close()
        elapsed = time.perf_counter() - self._t0
        steps = self._totals[1].item() / self.world
        if steps == 0:
            text = "no steps were run"
        else:
            text = (f"done: {steps:.0f} steps in {elapsed:.1f} s ({1000 * elapsed / steps:.1f} ms/step, "
                    f"{self._totals[2].item() / elapsed:,.0f} samples/s on {self.world} ranks); "
                    f"loss {self._first_loss:.4f} -> {self._last_loss:.4f}; cross-host "
                    f"{human_bytes(self._totals[3].item())} in tower exchanges, "
                    f"{human_bytes(self._totals[4].item())} in gradient sync")
        if note:
            text += "\n" + note
        self._print(text)
        return text
