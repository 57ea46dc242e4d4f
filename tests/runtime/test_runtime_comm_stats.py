"""CommStats bookkeeping (no processes)."""
from __future__ import annotations

from dmt_compile.runtime import CommStats, get_comm_stats, recording, summary_table
from dmt_compile.runtime.comm_stats import record


def test_record_counts_only_other_ranks_and_nonempty_messages():
    st = CommStats(rank=1)
    # group of 4, I am index 1: my own block (index 1) is ignored; a zero block is not a message
    st.record("cross", "a2a_rows", [10, 999, 0, 30], [5, 999, 7, 0], my_index=1)
    st.record("cross", "a2a_rows.bwd", [5, 999, 7, 0], [10, 999, 0, 30], my_index=1)
    st.record("intra", "grads", [4, 4], [4, 4], my_index=0)
    assert st.get("cross", "a2a_rows").as_dict() == {
        "calls": 1, "bytes_sent": 40, "bytes_recv": 12, "messages_sent": 2, "messages_recv": 2,
    }
    assert st.snapshot() == {
        "cross": {"calls": 2, "bytes_sent": 52, "bytes_recv": 52, "messages_sent": 4, "messages_recv": 4},
        "intra": {"calls": 1, "bytes_sent": 4, "bytes_recv": 4, "messages_sent": 1, "messages_recv": 1},
    }
    assert set(st.snapshot(by_op=True)) == {"cross/a2a_rows", "cross/a2a_rows.bwd", "intra/grads"}
    assert st.labels() == ["cross", "intra"]
    table = summary_table(st)
    assert "cross" in table and "bytes_sent" in table
    assert "rank" in summary_table([st.snapshot(), st.snapshot()])
    st.reset()
    assert st.snapshot() == {} and summary_table(st) == "(no collectives recorded)"


def test_recording_swaps_and_restores_the_active_recorder():
    outer = get_comm_stats()
    with recording() as a:
        record("world", "x", [0, 8], [0, 8], 0)
        with recording(CommStats()) as b:
            record("world", "x", [0, 1], [0, 1], 0)
        assert get_comm_stats() is a
    assert get_comm_stats() is outer
    assert a.get("world").bytes_sent == 8 and b.get("world").bytes_sent == 1
