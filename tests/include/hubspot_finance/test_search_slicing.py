"""The slicing algorithm against an in-memory index that behaves like HubSpot search.

The index is a stand-in for HubSpot search semantics (the sandbox tests exercise the real HTTP
path); here it lets hypothesis try many distributions quickly. Like HubSpot it recomputes the
result set on every call (so ``after`` is an offset into the *current* set), enforces the 10,000
cap, may return records sharing a millisecond in any order, and can edit records between calls.
"""

import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_finance.search_slicing import CAP, SearchStalledError, SliceStats, iter_changed

CURSOR = "lastmodifieddate"
OPS = {"GTE": int.__ge__, "LT": int.__lt__, "EQ": int.__eq__, "GT": int.__gt__}


@dataclass
class Page:
    results: list
    total: int
    after: int | None


class Index:
    """records: list[(id:int, ms:int)]. ``shuffle_ties`` reorders equal sort keys on every call."""

    def __init__(self, records, *, shuffle_ties=False, seed=0):
        self.ms = dict(records)
        assert len(self.ms) == len(records), "ids must be unique"
        self.ever = set(self.ms.items())  # every (id, ms) a record has held
        self.calls = 0
        self.drain_calls = 0  # calls sorted by hs_object_id
        self.edits = []  # (counter, n, ids, new_ms)
        self.shuffle_ties = shuffle_ties
        self.rng = random.Random(seed)

    def edit_after_call(self, n, ids, new_ms, *, drain=False):
        """After the n-th call (the n-th id-sorted call if ``drain``), move ``ids`` to ``new_ms``.

        ``new_ms`` may be a function of the position of that call (its GTE / EQ cursor value).
        """
        self.edits.append(("drain_calls" if drain else "calls", n, list(ids), new_ms))

    def __call__(self, *, filter_groups, sorts, properties, limit, after):
        self.calls += 1
        assert after + limit <= CAP, "asked past the cap"
        assert after == 0, f"offset paging (after={after}); every page must be a fresh keyset query"
        assert limit <= 200
        rows = list(self.ms.items())
        position = None
        for f in filter_groups[0]["filters"]:
            key = 1 if f["propertyName"] == CURSOR else 0
            v = int(f["value"])
            rows = [r for r in rows if OPS[f["operator"]](r[key], v)]
            if key == 1 and f["operator"] in ("GTE", "EQ"):
                position = v
        key = 1 if sorts[0]["propertyName"] == CURSOR else 0
        if key == 0:
            self.drain_calls += 1
        if self.shuffle_ties:  # a new order of ties on every call; otherwise ties come in id order
            self.salt = self.rng.random()
            rows.sort(key=lambda r: (r[key], hash((self.salt, r[0]))))
        else:
            rows.sort(key=lambda r: (r[key], r[0]))
        page = rows[after : after + limit]
        nxt = after + limit if after + limit < len(rows) else None
        results = [{"id": str(i), "properties": {CURSOR: str(ms), "hs_object_id": str(i)}} for i, ms in page]
        for counter, n, ids, new_ms in self.edits:
            if getattr(self, counter) == n:
                for i in ids:
                    self.ms[i] = new_ms(position) if callable(new_ms) else new_ms
                    self.ever.add((i, self.ms[i]))
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
    assert stats.pages == index.calls == 3 and stats.records == 450


def test_window_bounds_are_half_open():
    index = Index([(1, 999), (2, 1000), (3, 1999), (4, 2000)])
    ids, _ = drain(index, 1000, 2000)
    assert sorted(ids) == ["2", "3"]


def test_more_than_cap_spread_over_time_is_sliced():
    records = [(i, 10_000 + i // 3) for i in range(1, 25_001)]
    index = Index(records, shuffle_ties=True)
    ids, stats = drain(index, 0, 10**9)
    assert len(ids) == len(set(ids)) == 25_000
    assert index.calls == 25_000 // 200  # one call per 200 records: nothing is ever re-read


def test_distinct_milliseconds_cost_one_call_per_page():
    index = Index([(i, 1_000 + i) for i in range(1, 25_001)])
    ids, _ = drain(index, 0, 10**9)
    assert len(ids) == len(set(ids)) == 25_000
    assert index.calls == 25_000 // 200


def test_bulk_jobs_of_500_per_millisecond_cost_one_call_per_page():
    # what a HubSpot bulk job looks like: batches of records sharing one millisecond
    index = Index([(i, 1_000 + i // 500) for i in range(1, 20_001)], shuffle_ties=True)
    ids, _ = drain(index, 0, 10**9)
    assert len(ids) == len(set(ids)) == 20_000
    assert index.calls == 20_000 // 200


def test_bulk_job_over_cap_in_one_millisecond_is_read_whole():
    same_ms = [(i, 5_000) for i in range(1, 23_457)]
    others = [(100_000 + i, 4_000 + i) for i in range(500)] + [(200_000 + i, 6_000 + i) for i in range(300)]
    index = Index(same_ms + others, shuffle_ties=True)
    ids, stats = drain(index, 0, 10**9)
    assert sorted(map(int, ids)) == sorted(i for i, _ in same_ms + others)
    assert len(ids) == len(set(ids))
    assert index.calls == -(-(23_456 + 800) // 200)


def test_keyset_stall_fails_loudly():
    class Liar(Index):
        def __call__(self, **kwargs):
            page = super().__call__(**kwargs)
            # Always claims more results but returns ids that never advance.
            return Page([{"id": "1", "properties": {CURSOR: "5", "hs_object_id": "1"}}] * len(page.results), page.total, page.after)

    index = Liar([(i, 5) for i in range(1, 20_001)])
    with pytest.raises(SearchStalledError, match="made no progress"):
        drain(index, 0, 100)


# ---- edits during the scan: HubSpot's ``after`` is an offset into the current result set ----------


def test_record_edited_between_pages_does_not_make_the_next_page_skip_one():
    # 250 changed records; after page 1, one record already read is edited (its new time is past the
    # window end), so every later record moves up one place in the result set.
    index = Index([(i, 1_000 + i) for i in range(1, 251)])
    index.edit_after_call(1, [5], 10**9)
    ids, _ = drain(index, 0, 10_000)
    assert len(set(ids)) == 250, f"lost {sorted(set(range(1, 251)) - set(map(int, ids)))}"
    assert len(ids) == 250


@pytest.mark.parametrize("drain_call, edited_id", [(1, 1), (51, 10_001)])
def test_record_edited_within_a_crowded_millisecond_does_not_make_the_next_page_skip_one(drain_call, edited_id):
    # One millisecond holds more records than a query can serve; a record read on one page is edited
    # before the next page (call 51 is the first past the 10,000 an offset scan could see).
    index = Index([(i, 5_000) for i in range(1, 10_451)] + [(20_000, 4_000), (20_001, 6_000)])
    index.edit_after_call(drain_call, [edited_id], 10**9, drain=True)
    ids, stats = drain(index, 0, 10_000)
    assert set(map(int, ids)) == set(range(1, 10_451)) | {20_000, 20_001}, (
        f"lost {sorted(set(range(1, 10_451)) - set(map(int, ids)))}")
    assert len(ids) == len(set(ids))


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
    index = Index(records, shuffle_ties=True)
    ids, _ = drain(index, 0, 61, page_size=page_size)
    assert sorted(map(int, ids)) == [i for i, _ in records]


START, END = 10, 70


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.tuples(st.integers(0, 80), st.integers(1, 700)), min_size=0, max_size=12),
    page_size=st.integers(20, 200),
    edits=st.lists(
        st.tuples(st.integers(1, 60), st.booleans(), st.integers(0, 10**6), st.booleans(), st.integers(0, 10**6)),
        max_size=25,
    ),
    seed=st.integers(0, 2**16),
)
def test_edits_between_calls_never_lose_an_unedited_record(groups, page_size, edits, seed):
    """Random records in and around [START, END); between calls, random records are edited: moved past
    the window end, or into the window after the current position. Every record in the window at the
    start that was not edited comes out exactly once; nothing comes out that was never in the window."""
    records, next_id = [], 1
    for ms, count in groups:
        for _ in range(count):
            records.append((next_id, ms))
            next_id += 1
    index = Index(records, shuffle_ties=True, seed=seed)
    edited = set()
    for n, drain_call, pick, past_end, offset in edits:
        if not records:
            break
        rid = records[pick % len(records)][0]
        edited.add(rid)
        if past_end:
            index.edit_after_call(n, [rid], END + offset % 5, drain=drain_call)
        else:
            index.edit_after_call(n, [rid], lambda pos, o=offset: min(END - 1, pos + 1 + o % (END - pos)), drain=drain_call)

    stats = SliceStats()
    pages = list(iter_changed(index, cursor_property=CURSOR, start_ms=START, end_ms=END, properties=[],
                              stats=stats, page_size=page_size))
    got = [r for page in pages for r in page]
    ids = [int(r["id"]) for r in got]

    in_window = {i for i, ms in records if START <= ms < END}
    for i in in_window - edited:
        assert ids.count(i) == 1, f"record {i} emitted {ids.count(i)} times"
    ever_in_window = {i for i, ms in index.ever if START <= ms < END}
    assert set(ids) <= ever_in_window
    assert all(START <= int(r["properties"][CURSOR]) < END for r in got)
    assert all(page for page in pages)

    # Calls: one per page of records emitted, plus the last (short or empty) one.
    assert stats.pages == index.calls
    assert index.calls <= 1 + len(ids) // page_size + 1
