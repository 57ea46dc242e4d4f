"""Which member of a tower's lookup group owns each table (table-wise), or shards it by rows."""
from __future__ import annotations

from dmt_compile.ir.detection import Lookup

__all__ = ["table_owners", "ROW_WISE", "ROW_WISE_MODES"]

ROW_WISE = -1  # owner value of a table sharded by rows over every member
ROW_WISE_MODES = ("auto", "never", "always")


def table_owners(lookups: list[Lookup], size: int, row_wise: str = "auto",
                 hosts: "tuple[int, ...] | None" = None) -> list[int]:
    """Owner index (0..size-1) per lookup, or `ROW_WISE` for a table sharded by rows over all members.

    Table-wise: largest tables first on the least-loaded member; lookups sharing a table share
    the owner. Row-wise ("auto"): a table larger than one member's fair share of the tower's
    table elements (and with at least `size` rows) is split by rows instead; "always"/"never"
    force it. torchrec collections are always table-wise. With `hosts` (the host of each member:
    the flat baseline's world group) placement is host-aware: each table goes to the least-loaded
    host first, then to that host's least-loaded member, so hosts' NICs carry equal shares (26
    equal tables on 2 hosts x 2: 13 per host, not 14/12).
    """
    tables: dict[str, tuple[int, int]] = {}
    collections = set()
    for lk in lookups:
        tables.setdefault(lk.tables[0], (lk.rows * lk.dim, lk.rows))
        if lk.is_collection:
            collections.add(lk.tables[0])
    total = sum(e for e, _ in tables.values())
    by_rows = set()
    if size > 1 and row_wise != "never":
        by_rows = {t for t, (elems, rows) in tables.items() if t not in collections
                   and rows >= size and (row_wise == "always" or elems > total / size)}
    load = [0] * size
    owner_of: dict[str, int] = {t: ROW_WISE for t in by_rows}
    for name, (elems, _) in sorted(tables.items(), key=lambda kv: (-kv[1][0], kv[0])):
        if name in by_rows:
            continue
        if hosts is not None and len(set(hosts)) > 1:
            host_load = {h: sum(load[i] for i in range(size) if hosts[i] == h) for h in set(hosts)}
            h = min(host_load, key=lambda k: (host_load[k], k))
            j = min((i for i in range(size) if hosts[i] == h), key=lambda i: (load[i], i))
        else:
            j = min(range(size), key=lambda i: (load[i], i))
        owner_of[name] = j
        load[j] += elems
    return [owner_of[lk.tables[0]] for lk in lookups]
