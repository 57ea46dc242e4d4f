"""`Candidate`: one way to run the model on a topology, with the workload facts a predictor needs.

A candidate is a point of the search space of `strategy="auto"`: `flat` (table-wise over the
world, one tower), SPTT with identity Tower Modules, or SPTT with a compressing Tower Module at a
compression c, fed `direct`, `hierarchical` or through `decoder`s, with a wire dtype. It carries
per-tower loads (host, looked-up width, ids, width leaving the tower, Tower-Module FLOPs and
parameters) derived analytically from the one tower plan, so predicting a candidate never
transforms the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Candidate", "TowerLoad", "Refusal", "WIRE_DTYPES", "WIRE_BYTES", "QUALITY_NEUTRAL_FEEDS"]

#: bytes per element of every wire dtype the search knows; a dtype is searched only when the
#: runtime supports it (`WIRE_DTYPES`).
WIRE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8_e4m3": 1}
#: wire dtypes the search considers (`transform(wire_dtype=)`). A lossy wire (bf16, fp16) is never
#: exact: the quality check trains it with the exchanges rounded as the wire rounds them
#: (`runtime.wire_codec.emulate_wire`), and without a check it is not chosen. fp8 is not searched
#: (it needs float8 casts and rounds far more).
WIRE_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16")
LOSSLESS_WIRES = ("fp32",)
#: feeds that cannot change quality: exact (flat, identity). The decoder feed is not among them:
#: it keeps the model's interaction, but what crosses the hop is still compressed, and the quality
#: harness measured `linear` with decoders 0.012 AUC below flat; compressing candidates are
#: admitted without data only on measured evidence (`quality_evidence`).
QUALITY_NEUTRAL_FEEDS = ("flat", "identity")


@dataclass(frozen=True)
class TowerLoad:
    """Per-sample load of one tower (what the cost model prices)."""

    host: int
    width_in: float  # elements looked up per sample
    ids: float  # ids per sample
    width_out: float  # elements per sample leaving the tower
    tm_flops: float = 0.0  # Tower-Module forward FLOPs per sample
    tm_params: float = 0.0  # Tower-Module parameters (synchronised inside the host)
    tm_shape: tuple = ()  # (input widths, core width, embedding dim) of a compressing Tower Module


@dataclass(frozen=True)
class Candidate:
    """One configuration `transform` can build; `transform_kwargs()` builds it."""

    strategy: str  # flat | sptt
    tower_module: str = "identity"
    compression: float = 1.0  # the c passed to transform
    feed: str = "identity"  # flat | identity | direct | hierarchical | decoder
    wire_dtype: str = "fp32"
    towers: tuple[TowerLoad, ...] = ()
    effective_compression: float = 1.0  # elements looked up / elements leaving the towers
    decoder_flops: float = 0.0  # decoder forward FLOPs per sample (all towers; decoder feed)
    decoder_params: float = 0.0
    dense_flops: float = 0.0  # forward FLOPs per sample of the rest of the model (the same for every candidate)
    dense_ops: float = 0.0  # operators per forward of the rest of the model
    dense_params: float = 0.0  # data-parallel parameters of the rest of the model

    @property
    def key(self) -> str:
        """A stable name, e.g. `flat/fp32`, `sptt/identity/fp32`, `sptt/dot/c=4/hierarchical/fp32`."""
        if self.strategy == "flat":
            return f"flat/{self.wire_dtype}"
        if self.tower_module == "identity":
            return f"sptt/identity/{self.wire_dtype}"
        return f"sptt/{self.tower_module}/c={self.compression:g}/{self.feed}/{self.wire_dtype}"

    @property
    def quality_neutral(self) -> bool:
        """True when the candidate cannot change quality (see QUALITY_NEUTRAL_FEEDS) on a lossless wire."""
        return self.feed in QUALITY_NEUTRAL_FEEDS and self.lossless_wire

    @property
    def exact(self) -> bool:
        """True when the candidate computes exactly what the flat model computes."""
        return self.feed in ("flat", "identity") and self.lossless_wire

    @property
    def lossless_wire(self) -> bool:
        return self.wire_dtype in LOSSLESS_WIRES

    @property
    def wire_bytes(self) -> int:
        return WIRE_BYTES[self.wire_dtype]

    def transform_kwargs(self, num_hosts: int, local_size: int) -> dict[str, Any]:
        """`transform` keyword arguments building this candidate (flat: one tower on a 1 x W topology)."""
        if self.strategy == "flat":
            out = {"topology_shape": (1, num_hosts * local_size), "num_towers": 1, "towers": None,
                   "tower_module": "identity", "compression": None, "feed": "auto"}
        elif self.tower_module == "identity":
            out = {"tower_module": "identity", "compression": None, "feed": "auto"}
        else:
            out = {"tower_module": self.tower_module, "compression": self.compression, "feed": self.feed}
        if self.wire_dtype != "fp32":
            out["wire_dtype"] = self.wire_dtype
        return out

    def describe(self) -> str:
        wire = "" if self.lossless_wire else f", {self.wire_dtype} wire"
        if self.strategy == "flat":
            return "flat (table-wise over the world)" + wire
        if self.tower_module == "identity":
            return "SPTT, identity Tower Modules" + wire
        return (f"SPTT + {self.tower_module} c={self.compression:g} (effective {self.effective_compression:.2f}), "
                f"{self.feed} feed" + wire)


@dataclass(frozen=True)
class Refusal:
    """A part of the search space the model does not admit, and why."""

    what: str  # e.g. "sptt/*/direct", "sptt/dot/c=16/hierarchical/fp32", "wire bf16"
    reason: str
