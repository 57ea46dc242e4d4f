"""The one progress bar of long loops: tqdm when it is installed, else a one-line text bar; silent
off a terminal.

`ProgressBar(desc, total)` draws on `stream` (default stderr) only when that stream is a terminal
(`enabled=None`), so pipes, files, CI logs and `--format json` runs stay quiet; `enabled=True` or
`False` decides instead. `update(n, what)` advances, `set(done, what)` jumps to a count, `write(line)`
prints a line above the bar without breaking it, `close()` ends it (a `with` block closes it too;
`leave=False` erases it).
An instance is also the `Progress` callable of the strategy search: `bar(done, total, what)`
(closed when `done` reaches `total`, reopened by the next call). Without tqdm the text bar reads
`desc: [#####     ] done/total what`, the same words tqdm prints, redrawn at most ten times a second.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["ProgressBar", "is_terminal"]

_BAR_CELLS = 30
_WHAT_CHARS = 40
_REDRAW_S = 0.1


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is an interactive terminal (False for pipes, files, captured streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _tqdm_class() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: the text bar
        return None
    return tqdm


class ProgressBar:
    """A progress bar for one long loop (module docstring)."""

    def __init__(self, desc: str, total: int = 0, *, stream: IO[str] | None = None, enabled: bool | None = None,
                 unit: str = "it", initial: int = 0, leave: bool = True) -> None:
        self.desc, self.total, self.unit, self.n = desc, int(total), unit, int(initial)
        self.leave = leave  # False: the bar is erased when it closes
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else bool(enabled)
        self.what = ""  # what is running, shown after the count until the next `what`
        self._tqdm: Any = None
        self._drawn = 0  # characters of the text bar on the current line (0: none drawn)
        self._last_draw = 0.0

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, done: int, total: int, what: str | None = None) -> None:
        """The strategy search's `Progress`: `done` of `total` finished, `what` is running."""
        self.total = int(total)
        self.set(done, what)
        if done >= total:
            self.close()

    def update(self, n: int = 1, what: str | None = None) -> None:
        self.set(self.n + n, what)

    def set(self, done: int, what: str | None = None) -> None:
        """`done` finished; `what` (if given) replaces the text after the count."""
        self.n = int(done)
        changed = what is not None and what != self.what
        if what is not None:
            self.what = what
        if not self.enabled:
            return
        tqdm = self._tqdm if self._tqdm is not None else self._open_tqdm()
        if tqdm is not None:
            tqdm.update(self.n - tqdm.n)
            if changed:
                tqdm.set_postfix_str(self.what[:_WHAT_CHARS])
            return
        now = time.monotonic()
        if self._drawn and now - self._last_draw < _REDRAW_S and not (self.total and self.n >= self.total):
            return
        self._last_draw = now
        self._draw()

    def write(self, line: str) -> None:
        """Print `line` (plus a newline) above the bar; plain print when the bar is off."""
        if self._tqdm is not None:
            self._tqdm.write(line, file=self.stream)
            return
        drawn = self._drawn
        if drawn:
            self.stream.write("\r" + " " * drawn + "\r")
        self.stream.write(line + "\n")
        if drawn:
            self._draw()
        self.stream.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        if self._drawn:
            self.stream.write("\n" if self.leave else "\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def _open_tqdm(self) -> Any:
        tqdm = _tqdm_class()
        if tqdm is None:
            return None
        self._tqdm = tqdm(total=self.total or None, initial=self.n, desc=self.desc, file=self.stream,
                          dynamic_ncols=True, unit=self.unit, leave=self.leave)
        if self.what:
            self._tqdm.set_postfix_str(self.what[:_WHAT_CHARS])
        return self._tqdm

    def _draw(self) -> None:
        if self.total:
            filled = _BAR_CELLS * min(self.n, self.total) // self.total
            text = f"{self.desc}: [{'#' * filled:<{_BAR_CELLS}}] {self.n}/{self.total}"
        else:
            text = f"{self.desc}: {self.n} {self.unit}"
        if self.what:
            text += f" {self.what[:_WHAT_CHARS]}"
        self.stream.write("\r" + text.ljust(self._drawn))
        self.stream.flush()
        self._drawn = max(self._drawn, len(text))
