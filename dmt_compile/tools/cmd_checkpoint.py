"""`dmt-compile checkpoint DIR [--to-flat out.pt [--partial]]`: inspect or convert a distributed checkpoint.

Without `--to-flat` it prints what the checkpoint holds (topology it was written on, tensors,
optimizer, tables sharded by rows). With `--to-flat` it writes the original (flat) model's
`state_dict` (its keys, its order), which `model.load_state_dict(torch.load("out.pt"))` loads
strictly; `--partial` leaves out layers the rewrite rebuilt (load those with strict=False).
"""
from __future__ import annotations

from typing import IO

__all__ = ["register", "run_checkpoint"]


def register(sub) -> None:
    p = sub.add_parser("checkpoint", help="inspect a distributed checkpoint or convert it to the flat model's state")
    p.add_argument("dir", metavar="DIR", help="a checkpoint directory written by DistributedDmt.save_checkpoint")
    p.add_argument("--to-flat", metavar="OUT.pt", default=None,
                   help="write the original model's state_dict (torch.save) for model.load_state_dict")
    p.add_argument("--partial", action="store_true",
                   help="with --to-flat: leave out layers the rewrite rebuilt instead of refusing")
    p.set_defaults(func=run_checkpoint)


def _summary(path: str) -> str:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    from dmt_compile.training.checkpoint import read_meta

    meta = read_meta(path)
    md = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    model = {k: m for k, m in md.items() if k.startswith("model/") and isinstance(m, TensorStorageMetadata)}
    optim = [k for k in md if k.startswith("optim/")]
    sharded = sorted(k[len("model/"):] for k, m in model.items() if len(m.chunks) > 1)
    elements = sum(int(m.size.numel()) for m in model.values())
    added = [k for k in meta["keys"] if k not in set(meta["original"])]
    lines = [
        f"checkpoint {path}",
        f"  written on      : topology {meta['topology']} ({meta['world_size']} ranks)",
        f"  model tensors   : {len(model)} ({elements:,} elements); {len(meta['original'])} of the original model, "
        f"{len(added)} added by the compiler",
        f"  sharded by rows : {', '.join(sharded) if sharded else 'none'}",
        f"  optimizer       : {meta['optimizer'] or 'none'}" + (f" ({len(optim)} state tensors)" if optim else ""),
        f"  extra state     : {'yes' if 'extra' in md else 'none'}",
    ]
    if meta["rebuilt"]:
        lines.append(f"  rebuilt layers  : {', '.join(meta['rebuilt'])} "
                     "(no flat counterpart; --to-flat needs --partial)")
    return "\n".join(lines) + "\n"


def run_checkpoint(args, stdout: IO[str]) -> int:
    if not args.to_flat:
        stdout.write(_summary(args.dir))
        return 0
    import torch

    from dmt_compile.training.checkpoint import flat_state_from_checkpoint

    state = flat_state_from_checkpoint(args.dir, strict=not args.partial)
    torch.save(state, args.to_flat)
    stdout.write(f"wrote {args.to_flat}: {len(state)} tensors of the original model "
                 "(load with model.load_state_dict(torch.load(path)))\n")
    return 0
