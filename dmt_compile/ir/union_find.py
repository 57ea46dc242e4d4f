"""A tiny deterministic union-find over hashable items."""
from __future__ import annotations

from typing import Hashable, Iterable

__all__ = ["UnionFind"]


class UnionFind:
    def __init__(self, items: Iterable[Hashable]):
        self.parent = {x: x for x in items}

    def find(self, x: Hashable) -> Hashable:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Hashable, b: Hashable) -> bool:
        """Merge the sets of a and b; True if they were apart."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        first, second = sorted((ra, rb), key=list(self.parent).index)
        self.parent[second] = first
        return True

    def groups(self) -> list[list[Hashable]]:
        """Sets in order of their first member's insertion."""
        out: dict[Hashable, list[Hashable]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return list(out.values())
