"""The slicing algorithm against an in-memory index that enforces the 10,000 cap.

The index is a stand-in for HubSpot search semantics (the sandbox tests exercise the real HTTP
path); here it lets hypothesis try many distributions quickly.
"""

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_finance.search_slicing import CAP, SearchStalledError, SliceStats, iter_changed

CURSOR = "lastmodifieddate"


@dataclass
class Page:
    results: list
    total: int
    after: int | None


class Index:
    def __init__(self, records):  # records: list[(id:int, ms:int)]
        self.records = records
        self.calls = 0

    def __call__(self, *, filter_groups, sorts, properties, limit, after):
        self.calls += 1
        assert after + limit <= CAP, "asked past the cap"
        assert limit <= 200
        rows = self.records
        for f in filter_groups[0]["filters"]:
            key = 1 if f["propertyName"] == CURSOR else 0
            v = int(f["value"])
            op = {"GTE": lambda a: a >= v, "LT": lambda a: a < v, "EQ": lambda a: a == v, "GT": lambda a: a > v}[f["operator"]]
            rows = [r for r in rows if op(r[key])]
        key = 1 if sorts[0]["propertyName"] == CURSOR else 0
        rows = sorted(rows, key=lambda r: (r[key], r[0]))
        page = rows[after : after + limit]
        nxt = after + limit if after + limit < len(rows) else None
        results = [{"id": str(i), "properties": {CURSOR: str(ms), "hs_object_id": str(i)}} for i, ms in page]
        return Page(results, len(rows), nxt)


def drain(index, start, end, page_size=200):
    stats = SliceStats()
    ids = [r["id"] for page in iter_changed(index, cursor_property=CURSOR, start_ms=start, end_ms=end,
                                            properties=[], stats=stats, page_size=page_size) for r in page]
    return ids, stats


def test_small_window_single_query():
    index = Index([(i, 1000 + i) for i in range(1, 451)])
    ids, stats = drain(index, 1000, 2000)
    assert sorted(map(int, ids)) == list(range(1, 451))
    assert stats.queries == 1 and index.calls == 3


def test_window_bounds_are_half_open():
    index = Index([(1, 999), (2, 1000), (3, 1999), (4, 2000)])
    ids, _ = drain(index, 1000, 2000)
    assert sorted(ids) == ["2", "3"]


def test_more_than_cap_spread_over_time_is_sliced():
    records = [(i, 10_000 + i // 3) for i in range(1, 25_001)]
    index = Index(records)
    ids, stats = drain(index, 0, 10**9)
    assert len(ids) == len(set(ids)) == 25_000
    assert stats.queries >= 3 and stats.keyset_drains == 0
    assert index.calls <= 25_000 / 200 + 3 * stats.queries


def test_bulk_job_over_cap_in_one_millisecond_is_drained_by_id():
    same_ms = [(i, 5_000) for i in range(1, 23_457)]
    others = [(100_000 + i, 4_000 + i) for i in range(500)] + [(200_000 + i, 6_000 + i) for i in range(300)]
    index = Index(same_ms + others)
    ids, stats = drain(index, 0, 10**9)
    assert sorted(map(int, ids)) == sorted(i for i, _ in same_ms + others)
    assert len(ids) == len(set(ids))
    assert stats.keyset_drains == 1


def test_keyset_stall_fails_loudly():
    class Liar(Index):
        def __call__(self, **kwargs):
            page = super().__call__(**kwargs)
            # Always claims more results at the cap but returns ids that never advance.
            return Page([{"id": "1", "properties": {CURSOR: "5", "hs_object_id": "1"}}] * len(page.results), page.total, page.after)

    index = Liar([(i, 5) for i in range(1, 20_001)])
    with pytest.raises(SearchStalledError, match="made no progress"):
        drain(index, 0, 100)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 3000)), min_size=0, max_size=14),
    st.integers(50, 200),
)
def test_any_distribution_is_extracted_completely_once(groups, page_size):
    # groups: (millisecond, how many records share it); page sizes vary so caps are hit often.
    records, next_id = [], 1
    for ms, count in groups:
        for _ in range(count):
            records.append((next_id, ms))
            next_id += 1
    index = Index(records)
    ids, _ = drain(index, 0, 61, page_size=page_size)
    assert sorted(map(int, ids)) == [i for i, _ in records]
