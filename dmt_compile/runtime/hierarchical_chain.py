"""The hierarchical all-reduce of many buckets as an asynchronous three-stage chain.

:class:`~dmt_compile.runtime.hierarchical_all_reduce.HierarchicalAllReduce` posts its in-host
reduce-scatter at once but runs the cross-host all-reduce and the in-host all-gather only when it
is waited for. A :class:`HierarchicalChain` runs those two stages on a helper thread instead, as
soon as their input is ready: the caller :meth:`~HierarchicalChain.submit` s buckets in order (each
posts its reduce-scatter on the caller's thread, as before); the helper takes them in the same
order, waits for the bucket's reduce-scatter, sums the host's share, all-reduces it across hosts
and posts the all-gather (on its own tag, so it cannot pair with a later bucket's reduce-scatter),
then goes on with the next bucket. So while backward computes, bucket j's all-gather travels beside
bucket j+1's cross-host all-reduce and bucket j+2's reduce-scatter. :meth:`ChainedAllReduce.wait`
waits for the all-gather and writes the result: bitwise what the synchronous
``hierarchical_all_reduce_`` gives (the same operations in the same order).

Why this is safe to run beside the caller: each rank's helper issues its collectives (the
cross-host all-reduces on the peer group) in bucket order, and the caller issues no collective on
that group meanwhile. That holds when every exchange of the step runs as point-to-point messages
(gloo, ``duplex.uses_p2p``); :func:`chain_supported` says so, and callers fall back to the
synchronous stages elsewhere. A failed stage is re-raised (as a ``CollectiveError``) by the
``wait()`` of its bucket, and every later bucket fails with it.
"""
from __future__ import annotations

import queue
import threading
from typing import Any

import torch

from dmt_compile.runtime import duplex
from dmt_compile.runtime.hierarchical_all_reduce import HierarchicalAllReduce
from dmt_compile.runtime.tags import SYNC_GATHER_TAG, SYNC_TAG

__all__ = ["HierarchicalChain", "ChainedAllReduce", "chain_supported"]


def chain_supported(intra_group: Any, peer_group: Any) -> bool:
    """Whether both groups exchange point-to-point (module docstring): the chain may run beside backward."""
    return duplex.uses_p2p(intra_group) and duplex.uses_p2p(peer_group)


class ChainedAllReduce:
    """One bucket in a :class:`HierarchicalChain`; :meth:`wait` returns the reduced tensor."""

    def __init__(self, inner: HierarchicalAllReduce):
        self.inner = inner
        self.ready = threading.Event()  # set by the helper once the all-gather is posted (or failed)
        self.mine: torch.Tensor | None = None
        self.gather: Any = None
        self.error: BaseException | None = None

    def advance(self, tag: int) -> None:
        """Stages 2 and 3 (helper thread): reduce-scatter result -> across hosts -> all-gather posted."""
        with torch.no_grad():
            self.mine = self.inner.across(self.inner.scattered())
            self.gather = self.inner.start_gather(self.mine, tag)

    def wait(self) -> torch.Tensor:
        self.ready.wait()
        if self.error is not None:
            raise self.error
        return self.inner.write(self.gather.wait() if self.gather is not None else self.mine)


class HierarchicalChain:
    """Hierarchical all-reduces of one backward's buckets, their later stages on a helper thread."""

    def __init__(self, intra_group: Any, peer_group: Any, *, op: str, labels: tuple[str, str] = ("intra", "cross"),
                 tags: tuple[int, int] = (SYNC_TAG, SYNC_GATHER_TAG)):
        self.intra_group, self.peer_group, self.op, self.labels, self.tags = intra_group, peer_group, op, labels, tags
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, tensor: torch.Tensor) -> ChainedAllReduce:
        """Post `tensor`'s reduce-scatter now and queue its later stages (every rank submits in the same order)."""
        inner = HierarchicalAllReduce(tensor, self.intra_group, self.peer_group, False, self.op, self.labels,
                                      self.tags[0])
        handle = ChainedAllReduce(inner)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dmt-hier-chain", daemon=True)
            self._thread.start()
        self._queue.put(handle)
        return handle

    def close(self) -> None:
        """Stop the helper after the submitted buckets (call once every handle was waited for)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        failed: BaseException | None = None
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            if failed is None:
                try:
                    handle.advance(self.tags[1])
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    failed = exc
            handle.error = failed
            handle.ready.set()
