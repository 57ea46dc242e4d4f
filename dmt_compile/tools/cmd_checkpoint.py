"""`dmt-compile checkpoint DIR [--to-flat out.pt [--partial] | --to-dmt out.pt]`: inspect or convert a checkpoint.

DIR is a checkpoint or a training run's checkpoint root (then its `latest` is read). Every file is
verified against the checkpoint's manifest first, and nothing in it is run (see
docs/RELIABILITY.md). Without an option it prints what the checkpoint holds (topology it was
written on, tensors, optimizer, tables sharded by rows, modules the compiler added).

* `--to-flat` writes the original (flat) model's `state_dict` (its keys, its order), which
  `model.load_state_dict(torch.load("out.pt"))` loads strictly. Refused when the trained model
  needs modules the compiler added (Tower Modules, decoders) or layers it rebuilt: the flat model
  would compute another function. `--partial` takes the original tensors anyway.
* `--to-dmt` writes the whole `DmtModel` state (original names and the added `dmt.*` modules), for
  `dmt.load_state_dict(torch.load("out.pt"))` on the same model transformed the same way.
"""
from __future__ import annotations

import os
from typing import IO

from dmt_compile.errors import OutputError

__all__ = ["register", "run_checkpoint"]


def register(sub) -> None:
    p = sub.add_parser("checkpoint", help="inspect a distributed checkpoint or convert it to the flat model's state")
    p.add_argument("dir", metavar="DIR", help="a checkpoint directory, or a training run's checkpoint root "
                                              "(its latest checkpoint is read)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--to-flat", metavar="OUT.pt", default=None,
                     help="write the original model's state_dict (torch.save) for model.load_state_dict")
    out.add_argument("--to-dmt", metavar="OUT.pt", default=None,
                     help="write the whole DMT state (added modules included) for dmt.load_state_dict")
    p.add_argument("--partial", action="store_true",
                   help="with --to-flat: leave out what has no flat counterpart instead of refusing")
    p.set_defaults(func=run_checkpoint)


def _summary(path: str, note: str | None) -> str:
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    from dmt_compile.printing.progress import ProgressBar
    from dmt_compile.training.checkpoint_read import added_modules, open_manifest, read_metadata, verify

    manifest = open_manifest(path)
    with ProgressBar("checksums", unit="file", leave=False) as bar:  # a bar on a terminal: big runs take a while
        verify(path, manifest, progress=bar)
    meta = manifest["meta"]
    md = read_metadata(path, manifest).state_dict_metadata
    model = {k: m for k, m in md.items() if k.startswith("model/") and isinstance(m, TensorStorageMetadata)}
    optim = [k for k in md if k.startswith("optim/")]
    sharded = sorted(k[len("model/"):] for k, m in model.items() if len(m.chunks) > 1)
    elements = sum(int(m.size.numel()) for m in model.values())
    added = [k for k in meta["keys"] if k not in set(meta["original"])]
    size = sum(f["bytes"] for f in manifest["files"].values())
    lines = ([note] if note else []) + [
        f"checkpoint {path}" + (f" (step {manifest['step']})" if manifest.get("step") is not None else ""),
        f"  files           : {len(manifest['files'])} ({size:,} bytes), every checksum verified",
        f"  written on      : topology {meta['topology']} ({meta['world_size']} ranks)",
        f"  model tensors   : {len(model)} ({elements:,} elements); {len(meta['original'])} of the original model, "
        f"{len(added)} added by the compiler",
        f"  sharded by rows : {', '.join(sharded) if sharded else 'none'}",
        f"  optimizer       : {meta['optimizer'] or 'none'}" + (f" ({len(optim)} state tensors)" if optim else ""),
        f"  extra state     : {'none' if manifest.get('extra') is None else manifest['extra']!r:.200}",
    ]
    mods = added_modules(meta)
    if mods or meta["rebuilt"]:
        rebuilt = ", ".join(meta["rebuilt"]) or "none"
        lines.append(f"  added modules   : {', '.join(mods) or 'none'}; rebuilt: {rebuilt} "
                     "(--to-flat refuses; --to-dmt exports them)")
    return "\n".join(lines) + "\n"


def _check_output(out: str) -> None:
    """The output file can be written: refused before any checkpoint is read."""
    if os.path.isdir(out):
        raise OutputError(f"{out} is a directory", "name the output file, e.g. out.pt")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {out}: the directory {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {out}: {parent} is not writable", "choose a writable directory")


def run_checkpoint(args, stdout: IO[str]) -> int:
    from dmt_compile.training.checkpoint_read import locate

    out = args.to_flat or args.to_dmt
    if out:
        _check_output(out)
    path, note = locate(args.dir)
    if not out:
        stdout.write(_summary(path, note))
        return 0
    import torch

    from dmt_compile.training.checkpoint_read import dmt_state_from_checkpoint, flat_state_from_checkpoint

    if args.to_flat:
        state = flat_state_from_checkpoint(path, strict=not args.partial)
        how = "the original model (load with model.load_state_dict(torch.load(path)))"
    else:
        state = dmt_state_from_checkpoint(path)
        how = "the DMT model (load with dmt.load_state_dict(torch.load(path)))"
    try:
        torch.save(state, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}", "free space or choose another path") from None
    stdout.write((f"{note}\n" if note else "") + f"wrote {out}: {len(state)} tensors of {how}\n")
    return 0
