"""Checks of what `transform` / `run_passes` is given, before anything is captured
(whether the model is already transformed is `model.refuse_transformed`, run before these).

Each failure is an :class:`~dmt_compile.errors.InputError` naming the problem and the fix:

* the model (or an example input) lives on the ``meta`` device: there are no values to run;
* an id of the example inputs or of a calibration batch is outside its table: the message names
  the feature, the input it came from, the table, the sample and the value, and says "example
  inputs" or "calibration batch i" (the model itself would only say "index out of range in self").

The id check runs the model once on the example inputs (eval mode, no grad, random state and
training flags restored, ``max_norm`` renormalisation skipped so weights are not touched) and
watches every ``F.embedding`` / ``F.embedding_bag`` call and every torchrec collection. Ids that
are model inputs (or columns of one) are then checked on each calibration batch with a min / max
per input; when a lookup reads computed ids, the calibration batch is run the same way instead.
Any other failure of this run is left to capture, which reports it with the capture paths it tried.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from dmt_compile.capture.inputs import flatten_call
from dmt_compile.errors import InputError
from dmt_compile.ir.evaluation import preserved

__all__ = ["check_model", "check_model_and_inputs", "check_calibration", "IdWatch", "watched_run"]

_LOOKUP_FUNCTIONS = (F.embedding, F.embedding_bag)
_COLLECTIONS = ("EmbeddingBagCollection", "EmbeddingCollection")


def check_model(model: Any, example_inputs: Any, example_kwargs: Mapping[str, Any] | None = None) -> None:
    """The checks that need no run: the model is an `nn.Module` with values, the inputs have values."""
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}",
                         "pass the model object itself (e.g. dlrm), not its class or its output")
    _not_on_meta(model, example_inputs, example_kwargs)


def check_model_and_inputs(model: Any, example_inputs: Any, example_kwargs: Mapping[str, Any] | None = None,
                           calibration_batches: Sequence[Any] | None = None) -> None:
    """Raise :class:`InputError` for a model or inputs that cannot be transformed (module docstring).

    Standalone, with a watched run of its own; `capture` makes the same checks during its one eager run.
    """
    check_model(model, example_inputs, example_kwargs)
    if example_inputs is None:
        return  # run_passes says what is missing
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    _ids_in_range(model, args, dict(example_kwargs or {}), calibration_batches)


# ----------------------------------------------------------------------------- meta device


def _meta_leaves(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            out.append(path)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _meta_leaves(v, f"{path}[{k!r}]", out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _meta_leaves(v, f"{path}[{i}]", out)


def _not_on_meta(model: torch.nn.Module, example_inputs: Any, example_kwargs: Mapping[str, Any] | None) -> None:
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if meta:
        shown = ", ".join(meta[:3]) + (f" and {len(meta) - 3} more" if len(meta) > 3 else "")
        raise InputError(
            f"the model is on the meta device ({len(meta)} parameters/buffers have no values, e.g. {shown}); "
            "transform runs the model on the example inputs",
            "materialise it first: model.to_empty(device='cpu') and initialise or load_state_dict(...)")
    found: list[str] = []
    _meta_leaves(example_inputs, "example_inputs", found)
    _meta_leaves(dict(example_kwargs or {}), "example_kwargs", found)
    if found:
        raise InputError(f"example inputs on the meta device have no values: {', '.join(found[:3])}",
                         "pass real tensors (e.g. on the CPU) as example inputs")


# ----------------------------------------------------------------------------- ids in range


@dataclass(frozen=True)
class _Direct:
    """A lookup whose ids are an input leaf (or a column of one): checkable without running the model."""

    leaf: int
    column: int | None
    rows: int
    table: str
    feature: str
    display: str


class IdWatch(TorchFunctionMode):
    """Checks every embedding lookup of one eager run against its table (see module docstring).

    `renormalise=False` skips `max_norm` renormalisation (the user's own model); capture's run on
    its copy keeps it, so the reference output is what the model computes.
    """

    def __init__(self, model: torch.nn.Module, leaves: Sequence[Any], spec: Any, where: str, renormalise: bool = False):
        super().__init__()
        self.where, self.spec, self.renormalise = where, spec, renormalise
        self.params = {id(p): n for n, p in model.named_parameters()}
        self.buffers = {id(b): n for n, b in model.named_buffers()}
        self.leaves = [(i, t) for i, t in enumerate(leaves) if isinstance(t, torch.Tensor) and not t.is_floating_point()]
        self.by_storage: dict[int, list[tuple[int, torch.Tensor]]] = {}  # one dict probe per lookup, not a scan
        for i, t in self.leaves:
            self.by_storage.setdefault(t.untyped_storage().data_ptr(), []).append((i, t))
        self.direct: list[_Direct] = []
        self.computed = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _LOOKUP_FUNCTIONS:
            ids = args[0] if args else kwargs.get("input")
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            offsets = (args[2] if len(args) > 2 else kwargs.get("offsets")) if func is F.embedding_bag else None
            if isinstance(weight, torch.Tensor) and id(weight) in self.buffers:
                raise _buffer_table(self.buffers[id(weight)])
            if isinstance(ids, torch.Tensor) and isinstance(weight, torch.Tensor):
                self.check(ids, offsets, int(weight.shape[0]), self.params.get(id(weight), "an embedding table"))
            if not self.renormalise and kwargs.get("max_norm") is not None:  # the user's weights stay
                kwargs["max_norm"] = None
            if not self.renormalise and len(args) > 3 and args[3] is not None:  # 4th argument of both
                args = (*args[:3], None, *args[4:])
        return func(*args, **kwargs)

    def _source(self, ids: torch.Tensor) -> tuple[int, int | None, str, str] | None:
        """(leaf index, column, feature, display) when `ids` is an input leaf or a column of one."""
        for i, leaf in self.by_storage.get(ids.untyped_storage().data_ptr(), ()):
            meta = self.spec.leaves[i]
            if ids.shape == leaf.shape and ids.storage_offset() == leaf.storage_offset():
                return i, None, meta.feature, meta.display
            if leaf.dim() == 2 and ids.dim() == 1 and ids.shape[0] == leaf.shape[0] and ids.stride(0) == leaf.stride(0):
                col = (ids.storage_offset() - leaf.storage_offset()) // max(1, leaf.stride(1))
                return i, col, f"{meta.feature}[:,{col}]", f"{meta.display}[:, {col}]"
        return None

    def check(self, ids: torch.Tensor, offsets: Any, rows: int, table: str) -> None:
        if ids.is_floating_point() or ids.numel() == 0:
            return
        source = self._source(ids)
        if source is None:
            self.computed = True
        else:
            self.direct.append(_Direct(source[0], source[1], rows, table, source[2], source[3]))
        bad = ((ids < 0) | (ids >= rows)).nonzero()
        if bad.numel():
            index = tuple(int(x) for x in bad[0])
            feature, display = (source[2], source[3]) if source else ("(computed ids)", "computed from the inputs")
            raise _range_error(self.where, feature, display, table, rows, int(ids[index]),
                               _sample(ids, offsets, index), ids)

    def check_collection(self, module: torch.nn.Module, features: Any) -> None:
        configs = module.embedding_bag_configs() if hasattr(module, "embedding_bag_configs") \
            else module.embedding_configs()
        for cfg in configs:
            for key in cfg.feature_names:
                jt = features[key]
                values = jt.values()
                bad = ((values < 0) | (values >= cfg.num_embeddings)).nonzero()
                if bad.numel():
                    i = int(bad[0, 0])
                    sample = int(torch.searchsorted(jt.offsets()[1:], torch.tensor(i), right=True))
                    raise _range_error(self.where, key, f"key {key!r} of the KeyedJaggedTensor", f"{cfg.name}",
                                       cfg.num_embeddings, int(values[i]), sample, values)
        self.computed = True  # KJT ids are not plain input tensors: calibration batches run the model


def _buffer_table(name: str) -> InputError:
    """A lookup reads a table registered as a buffer: the runtime shards, trains and saves tables as parameters."""
    return InputError(
        f"embedding table {name!r} is a buffer, not a parameter: DMT places, synchronises and checkpoints tables "
        "as parameters, so the distributed runtime cannot hold it",
        f"register {name!r} as nn.Parameter(tensor, requires_grad=False) to keep it frozen "
        "(or use nn.Embedding.from_pretrained(tensor, freeze=True))")


def _sample(ids: torch.Tensor, offsets: Any, index: tuple[int, ...]) -> int:
    if ids.dim() == 1 and isinstance(offsets, torch.Tensor):
        return int(torch.searchsorted(offsets.to(torch.int64), torch.tensor(index[0]), right=True)) - 1
    return index[0]


def _range_error(where: str, feature: str, display: str, table: str, rows: int, value: int, sample: int,
                 ids: torch.Tensor) -> InputError:
    return InputError(
        f"{where}: feature {feature!r} ({display}) has id {value} at sample {sample}, but table {table} has "
        f"{rows} rows (ids must be in [0, {rows}); these ids span [{int(ids.min())}, {int(ids.max())}])",
        f"fix the ids of {feature!r} in the {where} (hashing / vocabulary size), or give table {table} more rows")


def watched_run(model: torch.nn.Module, args: tuple, kwargs: dict, watch: IdWatch, plain: bool = True) -> Any:
    """`model(*args, **kwargs)` with every lookup checked by `watch`; the caller sets the mode (`preserved`).

    The output returned is that of a second, plain run (`plain`), from the same random state: while a
    `TorchFunctionMode` such as `watch` is active every tensor "has a torch function", which turns off
    torch's fused inference paths (`nn.MultiheadAttention` and `nn.TransformerEncoderLayer` in eval mode
    under no_grad), so the watched run computes the slow path and differs from the model's own run in the
    last bits. The graph calls those modules as they are and takes the fused path, as the model does."""
    hooks = [m.register_forward_pre_hook(lambda mod, a, kw: watch.check_collection(mod, a[0] if a else
                                                                                   next(iter(kw.values()))),
                                         with_kwargs=True)
             for m in model.modules() if type(m).__name__ in _COLLECTIONS]
    rng = torch.get_rng_state()
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()} if plain else {}
    try:
        with watch:
            out = model(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    if not plain:
        return out
    torch.set_rng_state(rng)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in buffers and b.shape == buffers[name].shape:
                b.copy_(buffers[name])
    return model(*args, **kwargs)


def _run(model: torch.nn.Module, args: tuple, kwargs: dict, watch: IdWatch) -> bool:
    """One watched eager run; True when it got through (False: capture will report why it does not run)."""
    try:
        with preserved(model):
            model.eval()
            watched_run(model, args, kwargs, watch, plain=False)
        return True
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - the model fails for another reason: capture reports it with context
        return False


def _ids_in_range(model: torch.nn.Module, args: tuple, kwargs: dict, calibration: Sequence[Any] | None) -> None:
    try:
        spec, leaves = flatten_call(model.forward, args, kwargs)
    except Exception:  # noqa: BLE001 - capture reports inputs it cannot read
        return
    watch = IdWatch(model, leaves, spec, "example inputs")
    if _run(model, args, kwargs, watch):
        check_calibration(model, spec, watch, calibration)


def check_calibration(model: torch.nn.Module, spec: Any, watch: IdWatch, calibration: Sequence[Any] | None) -> None:
    """The ids of each calibration batch, as `watch` saw the example inputs read them (module docstring)."""
    for i, batch in enumerate(calibration or ()):
        batch = batch if isinstance(batch, tuple) else (batch,)
        where = f"calibration batch {i}"
        if watch.computed:
            _run(model, batch, {}, IdWatch(model, _flat(spec, batch), spec, where))
            continue
        flat = _flat(spec, batch)
        for d in watch.direct:
            ids = flat[d.leaf] if d.leaf < len(flat) else None
            if not isinstance(ids, torch.Tensor):
                continue
            ids = ids if d.column is None else ids[:, d.column]
            bad = ((ids < 0) | (ids >= d.rows)).nonzero()
            if bad.numel():
                index = tuple(int(x) for x in bad[0])
                raise _range_error(where, d.feature, d.display, d.table, d.rows, int(ids[index]), index[0], ids)


def _flat(spec: Any, batch: tuple) -> list[Any]:
    try:
        return spec.flatten(batch, {})
    except Exception:  # noqa: BLE001 - run_passes reports a calibration batch of the wrong structure
        return []
