"""Wire codecs of the pooled-embedding exchanges (tower outputs and table lookups), forward and backward.

By default an exchange carries its payload in the payload's own dtype (a float64 model's exchange
is exact). ``wire_dtype`` trades precision for bytes, like TorchRec's quantized communication
(``qcomm``: FP16/BF16/FP8 on the embedding all-to-all, torchrec.distributed.fbgemm_qcomm_codec):

* ``fp32``, ``fp16``, ``bf16``: every element is cast to that dtype on the sender and back to the
  payload's dtype on the receiver (round to nearest even). Bytes per element 4 / 2 / 2.
* ``fp8_e4m3``: ``torch.float8_e4m3fn`` with one float32 scale per destination block
  (``amax / 448``, sent ahead of the block as 4 bytes), so small gradients do not flush to zero.
  Bytes per element 1, plus 4 per non-empty block.

The gradient of the received rows travels back through the same codec (forward and backward are
both quantized, as in qcomm). Every rank derives the wire counts from the element counts it
already agrees on (:meth:`WireCodec.wire_counts`), so nothing extra is negotiated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from dmt_compile.errors import InputError

__all__ = ["WIRE_DTYPES", "WIRE_TOLERANCE", "WireCodec", "codec_for", "check_wire_dtype", "finish_coded", "FP8_HEADER_BYTES",
           "emulate_wire"]

WIRE_DTYPES = ("fp32", "fp16", "bf16", "fp8_e4m3")
_CAST = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FP8_HEADER_BYTES = 4  # one float32 scale per non-empty destination block


def fp8_supported() -> bool:
    """Whether this torch casts to and from float8 e4m3 on CPU."""
    try:
        return bool(torch.ones(2).to(torch.float8_e4m3fn).float().eq(1).all())
    except (AttributeError, RuntimeError, TypeError):
        return False


def check_wire_dtype(name: str | None) -> str | None:
    """`name` if it is a wire dtype this build can use (None: the payload's own dtype), else InputError."""
    if name is None:
        return None
    if name not in WIRE_DTYPES:
        raise InputError(f"unknown wire_dtype {name!r}", "use one of " + ", ".join(WIRE_DTYPES) + " (or leave it out)")
    if name == "fp8_e4m3" and not fp8_supported():
        raise InputError("wire_dtype 'fp8_e4m3' needs float8 casts, which this torch lacks on CPU",
                         "use bf16 or fp16")
    return name


@dataclass(frozen=True)
class WireCodec:
    """How one exchange's float rows travel: ``name`` is one of :data:`WIRE_DTYPES`."""

    name: str

    def is_identity(self, dtype: torch.dtype) -> bool:
        """A cast to `dtype` itself: the plain exchange does it (no codec)."""
        return _CAST.get(self.name) == dtype

    def wire_counts(self, counts: Sequence[int]) -> list[int]:
        """Elements on the wire for blocks of `counts` payload elements."""
        if self.name == "fp8_e4m3":
            return [c + FP8_HEADER_BYTES if c else 0 for c in counts]
        return [int(c) for c in counts]

    def encode(self, flat: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """The wire buffer of a 1-D payload cut into destination blocks of `counts` elements."""
        if self.name != "fp8_e4m3":
            return flat.detach().to(_CAST[self.name]).contiguous()
        parts = []
        for block in torch.split(flat.detach(), list(counts)):
            if block.numel() == 0:
                continue
            scale = (block.abs().max().float() / torch.finfo(torch.float8_e4m3fn).max).clamp_min(1e-30)
            q = (block.float() / scale).to(torch.float8_e4m3fn).view(torch.uint8)
            parts += [scale.reshape(1).view(torch.uint8), q]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.uint8, device=flat.device)

    def decode(self, wire: torch.Tensor, counts: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """The payload (in `dtype`) of a wire buffer holding blocks of `counts` payload elements."""
        if self.name != "fp8_e4m3":
            return wire.to(dtype)
        out, at = [], 0
        for c in counts:
            if not c:
                continue
            scale = wire[at: at + FP8_HEADER_BYTES].clone().view(torch.float32)
            q = wire[at + FP8_HEADER_BYTES: at + FP8_HEADER_BYTES + c].view(torch.float8_e4m3fn)
            out.append((q.float() * scale).to(dtype))
            at += c + FP8_HEADER_BYTES
        return torch.cat(out) if out else torch.zeros(0, dtype=dtype, device=wire.device)


def codec_for(name: str | None, dtype: torch.dtype) -> WireCodec | None:
    """The codec an exchange of `dtype` payload uses for wire dtype `name` (None: send `dtype` as is)."""
    if check_wire_dtype(name) is None:
        return None
    codec = WireCodec(name)
    return None if codec.is_identity(dtype) else codec


class _CodedFinish(torch.autograd.Function):
    """Wait for a coded exchange and decode; backward encodes the gradient, sends it back, decodes."""

    @staticmethod
    def forward(ctx, x, pending, codec, counts, group, label, op, hosts):  # type: ignore[override]
        send, recv, wsend, wrecv = counts
        ctx.args = (codec, counts, group, label, op, hosts, x.dtype)
        return codec.decode(pending.wait(), recv, x.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        from dmt_compile.runtime.duplex import exchange

        codec, (send, recv, wsend, wrecv), group, label, op, hosts, dtype = ctx.args
        wire = codec.encode(grad_out.contiguous(), recv)
        back = exchange(wire, list(wrecv), list(wsend), group, label, op + ".bwd", hosts)
        return (codec.decode(back, send, dtype),) + (None,) * 7


def start_coded(flat: torch.Tensor, send: Sequence[int], recv: Sequence[int], codec: WireCodec, group: Any,
                label: str, op: str, hosts: Sequence[int] | None) -> tuple[Any, tuple]:
    """Post the coded exchange of a 1-D payload; returns (pending, counts) for :func:`finish_coded`."""
    from dmt_compile.runtime.duplex import start

    wsend, wrecv = codec.wire_counts(send), codec.wire_counts(recv)
    pending = start(codec.encode(flat, send), wsend, wrecv, group, label, op, hosts)
    return pending, (list(send), list(recv), wsend, wrecv)


def finish_coded(flat: torch.Tensor, pending: Any, codec: WireCodec, counts: tuple, group: Any, label: str,
                 op: str, hosts: Sequence[int] | None) -> torch.Tensor:
    """The received payload in `flat`'s dtype; differentiable in `flat` (the gradient is coded too)."""
    return _CodedFinish.apply(flat, pending, codec, counts, group, label, op, hosts)


class _RoundTrip(torch.autograd.Function):
    """Values and their gradients rounded through a wire codec (one block: the whole tensor)."""

    @staticmethod
    def forward(ctx, x, codec):  # type: ignore[override]
        ctx.codec = codec
        flat = x.reshape(-1)
        return codec.decode(codec.encode(flat, [flat.numel()]), [flat.numel()], x.dtype).view_as(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        flat = g.reshape(-1)
        codec = ctx.codec
        return codec.decode(codec.encode(flat, [flat.numel()]), [flat.numel()], g.dtype).view_as(g), None


def emulate_wire(model: torch.nn.Module, wire: str | None) -> torch.nn.Module:
    """Round, in one process, what the runtime would exchange on a `wire` wire: every embedding lookup
    and every Tower Module output (modules named ``*_tm``), forward and backward, through the same
    codec (forward hooks on `model`, returned). No-op for None / ``fp32``: a float32 model's exchange
    is exact. Quality checks (the bench's ``--quality``, ``strategy="auto"``'s paired training) train
    lossy-wire configurations this way."""
    if wire in (None, "fp32", "native"):
        return model
    codec = WireCodec(check_wire_dtype(wire))

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            return _RoundTrip.apply(out, codec)
        return tuple(_RoundTrip.apply(o, codec) if isinstance(o, torch.Tensor) else o for o in out) \
            if isinstance(out, tuple) else out

    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)) or name.endswith("_tm"):
            m.register_forward_hook(hook)
    return model


# Largest |difference| `dmt-compile verify` accepts per wire dtype (outputs, gradients, parameters
# after one step of the examples' models, against the exact single-process reference). The
# relative rounding error of one cast is 2^-24 (fp32), 2^-11 (fp16), 2^-8 (bf16), 2^-4 (fp8 e4m3, of
# the block's amax); the tolerances leave room for it to pass through a few layers.
WIRE_TOLERANCE = {"fp32": 1e-5, "fp16": 5e-3, "bf16": 5e-2, "fp8_e4m3": 1.5e-1}
