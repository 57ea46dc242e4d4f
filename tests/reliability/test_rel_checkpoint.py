"""Checkpoints as a storage system: nothing foreign destroyed, damage named, I/O errors typed.

One 1x2 run writes two checkpoints (SGD and Adam); each test copies them and breaks the copy.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from dmt_compile.errors import CheckpointDamaged, CheckpointError
from dmt_compile.training import checkpoint_files as files
from dmt_compile.training.checkpoint_read import dmt_state_from_checkpoint, read_checkpoint, read_meta
from dmt_compile.runtime.launch import launch_local
from dmt_compile.tools.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = {"PYTHONPATH": os.pathsep.join([HERE, ROOT])}
sys.path.insert(0, HERE)
from ckpt_workers import load_each, load_rank_path, save_each, save_sgd_and_adam  # noqa: E402

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("written")
    launch_local(save_sgd_and_adam, "1x2", args=("1x2", str(d)), timeout_s=400, env=ENV)
    return str(d)


def _copy(written: str, tmp_path, name: str = "adam") -> str:
    dst = str(tmp_path / name)
    shutil.copytree(os.path.join(written, name), dst)
    return dst


def _shard(path: str) -> str:
    return os.path.join(path, sorted(n for n in os.listdir(path) if n.endswith(".distcp"))[-1])


def test_every_file_is_in_the_manifest_with_its_checksum(written):
    path = os.path.join(written, "adam")
    manifest = files.read_manifest(path)
    assert manifest["complete"] and manifest["extra"] == {"step": 2, "note": "adam"}
    on_disk = sorted(n for n in os.listdir(path) if n != files.MANIFEST)
    assert sorted(manifest["files"]) == on_disk and ".metadata" in on_disk
    assert files.file_digests(path, on_disk) == manifest["files"]
    assert manifest["meta"]["optimizer"] == "Adam"
    assert not [n for n in os.listdir(written) if ".partial-" in n or n.endswith(".lock")]  # nothing left over


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "garbage-metadata", "delete-manifest"])
def test_damage_is_named_in_one_line(written, tmp_path, damage):
    path = _copy(written, tmp_path)
    shard = _shard(path)
    if damage == "flip":
        with open(shard, "r+b") as fh:
            fh.seek(os.path.getsize(shard) // 2)
            byte = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([byte[0] ^ 1]))
        want = f"{os.path.basename(shard)} does not match its SHA-256"
    elif damage == "truncate":
        with open(shard, "r+b") as fh:
            fh.truncate(1000)
        want = f"{os.path.basename(shard)} has 1,000 bytes, the manifest says"
    elif damage == "delete":
        os.unlink(shard)
        want = f"{os.path.basename(shard)} is missing"
    elif damage == "garbage-metadata":
        with open(os.path.join(path, ".metadata"), "wb") as fh:
            fh.write(b"\x00garbage" * 10)
        want = ".metadata has 80 bytes"
    else:
        os.unlink(os.path.join(path, files.MANIFEST))
        want = "a DCP checkpoint without dmt_checkpoint.json"
    for call in (lambda: read_checkpoint(path), lambda: read_meta(path, verify_all=True)):
        with pytest.raises(CheckpointError) as err:
            call()
        assert want in str(err.value).splitlines()[0]
    err_text = io.StringIO()
    assert main(["checkpoint", path], stdout=err_text) == 2


def test_a_foreign_dcp_checkpoint_is_refused_without_reading_it(tmp_path):
    import torch.distributed.checkpoint as dcp

    dcp.save({"w": torch.ones(3)}, storage_writer=dcp.FileSystemWriter(str(tmp_path / "theirs")), no_dist=True)
    with pytest.raises(CheckpointError, match="not a dmt_compile checkpoint: a DCP checkpoint without"):
        read_checkpoint(str(tmp_path / "theirs"))


def _write_foreign(directory) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "notes.txt"), "w") as fh:
        fh.write("my work")


def test_save_never_destroys_what_is_not_ours(written, tmp_path):
    """A working directory and a run's root are refused; overwrite=True moves them aside (kept);
    our own checkpoint is replaced; extra that is not plain data is one typed error on every rank."""
    work, run_root, ours = tmp_path / "work", tmp_path / "run", _copy(written, tmp_path, "sgd")
    _write_foreign(work)
    os.makedirs(run_root)
    (run_root / "dmt_run.json").write_text('{"run_id": "x"}')
    cases = [{"path": str(work)}, {"path": str(run_root)}, {"path": str(work), "overwrite": True},
             {"path": ours}, {"path": str(tmp_path / "x"), "extra": {"f": object()}},
             {"path": str(tmp_path / "file.txt")}]
    (tmp_path / "file.txt").write_text("a file")
    outcomes = launch_local(save_each, "1x2", args=("1x2", cases), timeout_s=400, env=ENV)
    for rank_out in outcomes:  # every rank reports the same
        assert [o.get("error") for o in rank_out] == ["CheckpointError", "CheckpointError", None, None,
                                                      "CheckpointError", "CheckpointError"]
    first = outcomes[0]
    assert "is a directory that is not a dmt_compile checkpoint" in first[0]["message"]
    assert "a run's checkpoint root" in first[1]["message"]
    assert "extra= must be plain data" in first[4]["message"]
    assert "it is a file" in first[5]["message"]
    moved = [n for n in os.listdir(tmp_path) if n.startswith("work.moved-")]
    assert len(moved) == 1 and (tmp_path / moved[0] / "notes.txt").read_text() == "my work"  # kept, not deleted
    assert (run_root / "dmt_run.json").exists() and (tmp_path / "file.txt").read_text() == "a file"
    assert files.read_manifest(ours)["meta"]["optimizer"] == "Adam"  # ours was replaced by the new save
    assert not (tmp_path / "x").exists()
    leftovers = [n for n in os.listdir(tmp_path) if ".partial-" in n or n.endswith(".lock") or ".old-" in n]
    assert not leftovers


def test_io_error_while_writing_is_one_typed_line_naming_path_and_bytes(tmp_path):
    """Files may not grow past 100 kB (RLIMIT_FSIZE: the write fails as on a full disk)."""
    cases = [{"path": str(tmp_path / "ck"), "file_limit": 100_000}, {"path": str(tmp_path / "ck")}]
    outcomes = launch_local(save_each, "1x2", args=("1x2", cases), timeout_s=400, env=ENV)
    for rank_out in outcomes:
        first_line = rank_out[0]["message"].splitlines()[0]
        assert rank_out[0]["error"] == "CheckpointError", rank_out[0]
        assert first_line.startswith(f"cannot write checkpoint {tmp_path / 'ck'}: ")
        assert "File too large" in first_line or "files are limited to 100,000 bytes" in first_line, first_line
        assert "the checkpoint needs" in first_line and "are free" in first_line
        assert "path" in rank_out[1]  # the next save, without the limit, works
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # the failed save left nothing behind


def _can_mount_tmpfs(where) -> bool:
    os.makedirs(where, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_full_disk_is_refused_before_writing(tmp_path):
    disk = tmp_path / "small"
    if not _can_mount_tmpfs(disk):
        pytest.skip("mounting a small tmpfs needs root (the RLIMIT test covers the write-time error)")
    try:
        outcomes = launch_local(save_each, "1x2", args=("1x2", [{"path": str(disk / "ck")}]), timeout_s=400, env=ENV)
        line = outcomes[0][0]["message"].splitlines()[0]
        assert line.startswith(f"cannot write checkpoint {disk / 'ck'}: it needs about ") and "are free there" in line
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    lock = str(tmp_path / "ck.lock")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        with open(lock, "w") as fh:
            json.dump({"pid": sleeper.pid, "host": socket.gethostname()}, fh)
        with pytest.raises(CheckpointError, match=f"being written by another process .pid {sleeper.pid}"):
            files.acquire_lock(lock, "checkpoint ck")
    finally:
        sleeper.kill()
        sleeper.wait()
    note = files.acquire_lock(lock, "checkpoint ck")  # its process is gone now
    assert note and "stale lock" in note and str(sleeper.pid) in note
    files.release_lock(lock)
    assert not os.path.exists(lock)


def test_crash_between_the_renames_leaves_one_valid_state(written, tmp_path, monkeypatch):
    """Without the atomic exchange (two renames), a crash between them: the reader names the intact
    previous checkpoint; the next save of that path cleans up."""
    target, new = _copy(written, tmp_path, "adam"), _copy(written, tmp_path, "sgd")
    partial = target + ".partial-0000beef"
    os.rename(new, partial)
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def crash_on_second(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_rename(a, b)

    monkeypatch.setattr(files.os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        files.commit(partial, target)
    monkeypatch.setattr(files.os, "rename", real_rename)
    old = calls[0][1]
    with pytest.raises(CheckpointDamaged, match="stopped between its two renames; the previous checkpoint is "
                                                f"intact at {old}"):
        read_checkpoint(target)
    assert read_meta(old)["optimizer"] == "Adam"  # that one is complete and verified
    files.claim_target(target, overwrite=False)  # the next save: the leftovers are ours and go
    assert not os.path.exists(old) and not os.path.exists(partial)


def test_commit_replaces_our_checkpoint_in_one_atomic_exchange(written, tmp_path):
    target, new = _copy(written, tmp_path, "adam"), _copy(written, tmp_path, "sgd")
    partial = target + ".partial-0000cafe"
    os.rename(new, partial)
    files.commit(partial, target)
    assert read_meta(target)["optimizer"] == "SGD" and sorted(os.listdir(tmp_path)) == ["adam"]


def test_dcp_warnings_are_handled_at_the_source(written, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["checkpoint", os.path.join(written, "adam")], stdout=io.StringIO()) == 0
        read_checkpoint(os.path.join(written, "sgd"))
    assert not [w for w in caught if "torch/distributed" in w.filename], [str(w.message) for w in caught]


def test_to_flat_into_a_directory_is_refused_before_reading(tmp_path, capsys):
    """The checkpoint does not even exist: the output is checked first."""
    assert main(["checkpoint", str(tmp_path / "absent"), "--to-flat", str(tmp_path)], stdout=io.StringIO()) == 2
    assert capsys.readouterr().err.startswith(f"dmt-compile: error: OutputError: {tmp_path} is a directory")


def test_whole_dmt_state_exports_and_reloads(written, tmp_path):
    """--to-dmt: DmtModel.state_dict() under its own names; a fresh single-process transform loads it."""
    import dmt_compile
    from ckpt_workers import DLRM
    from dmt_compile.capture.model_spec import load_model_spec

    out = tmp_path / "dmt.pt"
    assert main(["checkpoint", os.path.join(written, "adam"), "--to-dmt", str(out)], stdout=io.StringIO()) == 0
    state = torch.load(out, weights_only=True)
    model, inputs = load_model_spec(DLRM, batch_size=4)
    dmt = dmt_compile.transform(model, "1x2", inputs)
    assert list(state) == list(dmt.state_dict())
    dmt.load_state_dict(state, strict=True)
    _, saved = read_checkpoint(os.path.join(written, "adam"))
    assert all(torch.equal(dmt.state_dict()[k], saved["model/" + k]) for k in state)
    again = dmt_state_from_checkpoint(os.path.join(written, "adam"))
    assert list(again) == list(state) and all(torch.equal(again[k], state[k]) for k in state)


def test_loading_damaged_or_mismatched_checkpoints_in_ranks_is_typed(written, tmp_path):
    """load_checkpoint on 1x2: damage and a missing shard (every rank raises CheckpointDamaged, none
    hangs), another optimizer, a mistyped path; an intact one loads its extra."""
    flipped, missing = _copy(written, tmp_path), _copy(written, tmp_path, "sgd")
    with open(_shard(flipped), "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xff")
    os.unlink(_shard(missing))
    cases = [(flipped, "adam"), (os.path.join(written, "adam"), "sgd"), (str(tmp_path / "nope"), "adam"),
             (os.path.join(written, "sgd"), "sgd"), (missing, None)]
    outcomes = launch_local(load_each, "1x2", args=("1x2", cases), timeout_s=400, env=ENV)
    for rank_out in outcomes:
        assert [o.get("error") for o in rank_out] == ["CheckpointDamaged", "CheckpointError", "CheckpointDamaged",
                                                      None, "CheckpointDamaged"]
        assert "does not match its SHA-256" in rank_out[0]["message"]
        assert "holds Adam state, but this run's optimizer is SGD" in rank_out[1]["message"]
        assert "does not exist" in rank_out[2]["message"]
        assert rank_out[3]["extra"] == {"step": 1, "note": "sgd"}
        assert "is missing" in rank_out[4]["message"]



def test_a_rank_that_cannot_open_the_checkpoint_stops_every_rank(written, tmp_path):
    """Rank 0 is given an intact checkpoint, rank 1 a path that does not exist: rank 1's error is
    raised on both (through DCP's planning step, before any data is read), neither waits for the other."""
    paths = [os.path.join(written, "adam"), str(tmp_path / "nope")]
    outcomes = launch_local(load_rank_path, "1x2", args=("1x2", paths), timeout_s=400, env=ENV)
    for out in outcomes:
        assert out.get("error") == "CheckpointDamaged", out
        assert f"checkpoint {tmp_path / 'nope'} does not exist" in out["message"].splitlines()[0]
