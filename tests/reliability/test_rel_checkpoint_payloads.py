"""Loading a checkpoint never runs code from it.

Each test plants a payload that runs a shell command (writing a marker file) when unpickled: in
`.metadata` (DCP reads it with `pickle.load`), in a DCP non-tensor record (DCP reads those with
`torch.load(weights_only=False)`): `optim_groups`, an optimizer state record, an `extra` record,
and in the manifest's `extra`. The forgery is complete: the manifest's checksums are recomputed,
so only the restricted readers stand between the payload and a shell. Every entry point is tried:
`load_checkpoint` in ranks, `dmt-compile checkpoint D`, `--to-flat`, `--to-dmt`, and `--resume`.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from dmt_compile.errors import CheckpointError
from dmt_compile.training import checkpoint_files as files
from dmt_compile.runtime.launch import launch_local
from dmt_compile.tools.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = {"PYTHONPATH": os.pathsep.join([HERE, ROOT])}
sys.path.insert(0, HERE)
from ckpt_workers import load_each, save_sgd_and_adam  # noqa: E402

pytestmark = pytest.mark.distributed
PLACES = ["metadata", "optim_groups", "optim_record", "extra_record", "manifest_extra"]


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _refresh_manifest(path: str) -> None:
    """Recompute every checksum, as an attacker who rewrote the files would."""
    manifest = files.read_manifest(path)
    names = [n for n in os.listdir(path) if n != files.MANIFEST]
    manifest["files"] = files.file_digests(path, names)
    files.write_manifest(path, **{k: v for k, v in manifest.items() if k != "format"})


def _plant_record(path: str, fqn: str, data: bytes) -> None:
    """Point the DCP record `fqn` (added if absent, as a non-tensor record) at `data`."""
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, MetadataIndex

    with open(os.path.join(path, ".metadata"), "rb") as fh:
        md = pickle.load(fh)  # our own test file, written a moment ago
    shard = os.path.join(path, "__0_0.distcp")
    offset = os.path.getsize(shard)
    with open(shard, "ab") as fh:
        fh.write(data)
    md.state_dict_metadata[fqn] = BytesStorageMetadata()
    for index in [i for i in md.storage_data if i.fqn == fqn]:
        del md.storage_data[index]
    md.storage_data[MetadataIndex(fqn)] = _StorageInfo("__0_0.distcp", offset, len(data))
    with open(os.path.join(path, ".metadata"), "wb") as fh:
        pickle.dump(md, fh)


def plant(path: str, where: str, marker: str) -> None:
    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    if where == "metadata":
        with open(os.path.join(path, ".metadata"), "wb") as fh:
            pickle.dump(Payload(marker), fh)
    elif where == "optim_groups":
        _plant_record(path, "optim_groups", buf.getvalue())
    elif where == "optim_record":  # SGD without momentum keeps None records: a non-tensor DCP record
        manifest = files.read_manifest(path)
        key = next(k for k in manifest["meta"]["keys"] if k.endswith("weight"))
        _plant_record(path, f"optim/{key}/momentum_buffer", buf.getvalue())
    elif where == "extra_record":
        _plant_record(path, "extra", buf.getvalue())
    else:
        manifest = files.read_manifest(path)
        manifest["extra"] = {"pickle": pickle.dumps(Payload(marker)).decode("latin-1")}
        files.write_manifest(path, **{k: v for k, v in manifest.items() if k != "format"})
    _refresh_manifest(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("payloads")
    launch_local(save_sgd_and_adam, "1x2", args=("1x2", str(d)), timeout_s=400, env=ENV)
    out = {}
    for where in PLACES:
        path, marker = str(d / where), str(d / f"RAN-{where}")
        shutil.copytree(str(d / "sgd"), path)
        plant(path, where, marker)
        out[where] = (path, marker)
    return out


def test_the_payloads_are_live(tmp_path):
    """The same bytes do run a command through plain pickle: the refusals below are real."""
    marker = tmp_path / "live"
    pickle.loads(pickle.dumps(Payload(str(marker))))
    assert marker.exists()


@pytest.mark.parametrize("where", PLACES)
def test_inspect_and_convert_run_nothing(planted, tmp_path, where):
    path, marker = planted[where]
    for argv in (["checkpoint", path], ["checkpoint", path, "--to-flat", str(tmp_path / "f.pt")],
                 ["checkpoint", path, "--to-dmt", str(tmp_path / "d.pt")]):
        code = main(argv, stdout=io.StringIO())
        assert not os.path.exists(marker), (where, argv)
        # inspecting reads .metadata only; converting reads every record: each payload refused where it is read
        refused = where == "metadata" or (len(argv) > 2 and where != "manifest_extra")
        assert code == (2 if refused else 0), (where, argv)
    if where == "manifest_extra":  # plain data: a string, returned as it is
        from dmt_compile.training.checkpoint_read import read_checkpoint

        _, state = read_checkpoint(path)
        assert isinstance(state["extra"]["pickle"], str) and not os.path.exists(marker)


def test_refusals_are_typed_and_name_the_record(planted):
    from dmt_compile.training.checkpoint_read import read_checkpoint

    with pytest.raises(CheckpointError, match=r"\.metadata asks for posix\.system|\.metadata asks for os\.system"):
        read_checkpoint(planted["metadata"][0])
    with pytest.raises(CheckpointError, match="record 'optim_groups' is not plain data or tensors"):
        read_checkpoint(planted["optim_groups"][0])
    with pytest.raises(CheckpointError, match="record 'optim/.*/momentum_buffer' is not plain data"):
        read_checkpoint(planted["optim_record"][0])


def test_load_checkpoint_in_ranks_runs_nothing(planted):
    cases = [(planted[w][0], "sgd") for w in PLACES]
    outcomes = launch_local(load_each, "1x2", args=("1x2", cases), timeout_s=400, env=ENV)
    assert not [w for w in PLACES if os.path.exists(planted[w][1])]
    for rank_out in outcomes:
        errors = [o.get("error") for o in rank_out]
        # metadata, optim_groups and the optimizer record are refused; a DCP `extra` record is never read
        # (extra lives in the JSON manifest) and the manifest's extra is a plain string
        assert errors == ["CheckpointError", "CheckpointError", "CheckpointError", None, None], rank_out
        assert rank_out[4]["extra"]["pickle"].startswith("\x80")


def test_resume_runs_nothing(tmp_path):
    """The trainer's --resume on a run whose latest checkpoint carries a payload in .metadata."""
    script = os.path.join(ROOT, "examples", "train_distributed.py")
    env = dict(os.environ, PYTHONPATH=ROOT)
    base = [sys.executable, script, "--local", "--topology", "1x2", "--steps", "2", "--checkpoint-every", "1",
            "--checkpoint-dir", str(tmp_path / "run")]
    first = subprocess.run(base, capture_output=True, text=True, timeout=500, env=env, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-2000:]
    marker = tmp_path / "RAN"
    plant(str(tmp_path / "run" / "step_000002"), "metadata", str(marker))
    resumed = subprocess.run(base + ["--resume", "--steps", "3"], capture_output=True, text=True, timeout=500,
                             env=env, cwd=ROOT)
    assert not marker.exists()
    assert resumed.returncode == 2
    errors = [line for line in resumed.stderr.splitlines() if line.startswith("train_distributed: error")]
    assert len(errors) == 1 and "CheckpointError" in errors[0] and "not part of DCP metadata" in errors[0], \
        resumed.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "dmt_run.json").read_text())["run_id"]
