"""The one progress bar (`printing.progress`): drawn on a terminal only, with or without tqdm, and the
CLI loops that use it (cost --model plans, checkpoint checksums, the strategy search's quality check)."""
from __future__ import annotations

import io
import os

import pytest

from dmt_compile.printing import progress as progress_mod
from dmt_compile.printing.progress import ProgressBar, is_terminal


class FakeTTY(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setattr(progress_mod, "_tqdm_class", lambda: None)


def test_text_bar_on_a_terminal_counts_to_the_end_and_ends_the_line(no_tqdm):
    tty = FakeTTY()
    with ProgressBar("plans", 4, stream=tty) as bar:
        for i in range(4):
            bar.update(1, f"step {i}")
    out = tty.getvalue()
    assert out.startswith("\rplans: [")
    assert f"plans: [{'#' * 30}] 4/4 step 3" in out  # the last state is always drawn
    assert out.endswith("\n") and out.count("\n") == 1


def test_text_bar_write_puts_the_line_above_the_bar(no_tqdm):
    tty = FakeTTY()
    bar = ProgressBar("train", 10, stream=tty, unit="step")
    bar.update(5)
    bar.write("step 5/10  loss 0.5")
    bar.close()
    lines = tty.getvalue().split("\n")
    assert lines[0].strip().endswith("step 5/10  loss 0.5")  # the bar was erased before the line
    assert lines[1].lstrip("\r").startswith("train: [") and "5/10" in lines[1]  # and drawn again below it


def test_quiet_off_a_terminal_or_when_disabled(no_tqdm):
    pipe, tty = io.StringIO(), FakeTTY()
    for stream, enabled in ((pipe, None), (tty, False)):
        with ProgressBar("plans", 3, stream=stream, enabled=enabled) as bar:
            bar.update(3, "done")
    assert pipe.getvalue() == "" and tty.getvalue() == ""
    assert not is_terminal(pipe) and is_terminal(tty) and not is_terminal(object())


def test_write_prints_plain_lines_when_the_bar_is_off():
    pipe = io.StringIO()
    bar = ProgressBar("train", 3, stream=pipe)
    bar.update(1)
    bar.write("a line")
    bar.close()
    assert pipe.getvalue() == "a line\n"


def test_tqdm_draws_the_same_words_when_installed():
    pytest.importorskip("tqdm")
    tty = FakeTTY()
    with ProgressBar("checksums", 3, stream=tty, unit="file") as bar:
        for name in ("a", "b", "c"):
            bar.update(1, name)
    out = tty.getvalue()
    assert "checksums:" in out and "3/3" in out


def test_search_progress_protocol_closes_at_the_end_and_reopens(no_tqdm):
    tty = FakeTTY()
    bar = ProgressBar("quality check", stream=tty)
    for total in (2, 3):  # two measurements in a row (e.g. two data sets)
        for done in range(total + 1):
            bar(done, total, f"seed {done}")
    out = tty.getvalue()
    assert out.count("\n") == 2 and "2/2" in out and "3/3" in out


def test_checkpoint_checksums_report_progress_per_file(tmp_path):
    from dmt_compile.training.checkpoint_files import file_digests, verify_files

    names = [f"__{i}_0.distcp" for i in range(3)]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(os.urandom(100 + i))
    files = file_digests(str(tmp_path), names)
    calls = []
    assert verify_files(str(tmp_path), files, names, lambda d, t, n: calls.append((d, t, n))) == []
    assert calls == [(0, 3, names[0]), (1, 3, names[1]), (2, 3, names[2]), (3, 3, "")]
    (tmp_path / names[1]).write_bytes(b"x" * 101)  # damaged: still reported, progress still ends
    calls.clear()
    assert verify_files(str(tmp_path), files, names, lambda d, t, n: calls.append((d, t, n))) != []
    assert calls[-1] == (3, 3, "")


def test_cost_model_shows_a_bar_on_a_terminal_and_none_for_json(monkeypatch, no_tqdm):
    import sys

    from conftest import ROOT
    from dmt_compile.tools.cli import main

    dlrm = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
    for fmt, shown in (("table", True), ("json", False)):
        err = FakeTTY()
        monkeypatch.setattr(sys, "stderr", err)
        assert main(["cost", "--model", dlrm, "--topology", "h100:16", "--compression", "4",
                     "--format", fmt], stdout=io.StringIO()) == 0
        assert ("plans: [" in err.getvalue()) is shown, err.getvalue()
        assert "2/2" in err.getvalue() if shown else err.getvalue() == ""


def test_strategy_search_draws_its_quality_check_bar_on_a_terminal(monkeypatch, no_tqdm):
    import sys

    import dmt_compile
    from helpers import load_model

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "strategy"))
    from fakes import FixedQuality, WireSharePredictor

    model, inputs = load_model("example:dlrm")
    for stream, shown in ((FakeTTY(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        dmt_compile.transform(model, "h100:16", inputs, strategy="auto", quality_check=FixedQuality({}),
                              predictor=WireSharePredictor(seconds_per_byte=1e-6))
        assert ("quality check: [" in stream.getvalue()) is shown
