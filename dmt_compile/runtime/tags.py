"""The point-to-point tags of the runtime, in one place.

Two exchanges in flight between the same pair of ranks at once must use different tags, or gloo
may match one's receive with the other's send.
"""
from __future__ import annotations

__all__ = ["DEFAULT_TAG", "PREFETCH_TAGS", "SYNC_TAG", "SYNC_GATHER_TAG"]

DEFAULT_TAG = 0  # every exchange of the step in flight
PREFETCH_TAGS = (7, 8)  # prefetched id exchanges of the next batches, alternating
SYNC_TAG = 11  # the hierarchical gradient all-reduce, which overlaps the backward's exchanges
SYNC_GATHER_TAG = 12  # its all-gather stage when the stages run as a chain (in flight beside later reduce-scatters)
