import pytest

from hubspot_provider.ratelimit import GeneralBudget, RateLimitHeaders, SlidingWindowLimiter


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_sliding_window_allows_capacity_then_waits_for_the_oldest_call():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now = 4.0
    waited = limiter.acquire()
    assert waited == pytest.approx(6.2, abs=0.01)  # the first call (t=0) leaves the window at t=10 (+2% margin)
    assert clock.now == pytest.approx(10.2, abs=0.01)


def test_never_more_than_capacity_in_any_window():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, 1.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(40):
        limiter.acquire()
        stamps.append(clock.now)
        clock.now += 0.05
    for i, t in enumerate(stamps):
        assert sum(1 for s in stamps if t <= s < t + 1.0 - 1e-9) <= 5, i


def test_pause_holds_callers():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 1.0, clock=clock, sleep=clock.sleep)
    limiter.pause(2.5)
    assert limiter.acquire() == pytest.approx(2.5)


def test_headers_parse_and_absent():
    headers = {
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "12",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Daily": "625000",
        "X-HubSpot-RateLimit-Daily-Remaining": "624000",
    }
    assert RateLimitHeaders.parse(headers) == RateLimitHeaders(190, 12, 10000, 625000, 624000)
    assert RateLimitHeaders.parse({}) is None
    assert RateLimitHeaders.parse({"X-HubSpot-RateLimit-Max": "lots"}) is None


def test_budget_adapts_to_announced_maximum_and_pauses_near_exhaustion():
    clock = FakeClock()
    budget = GeneralBudget(100, 10.0, share=0.9, clock=clock, sleep=clock.sleep)
    assert budget.limiter.capacity == 90
    budget.observe(RateLimitHeaders(max=190, remaining=150, interval_ms=10000))
    assert budget.limiter.capacity == 171
    # Exactly the reserve left is our own use stopping at its share: no pause.
    budget.observe(RateLimitHeaders(max=190, remaining=19, interval_ms=10000))
    assert budget.acquire() == 0.0
    # Others spent part of the reserve too -> pause half a window.
    budget.observe(RateLimitHeaders(max=190, remaining=10, interval_ms=10000))
    assert budget.acquire() == pytest.approx(5.0)


def test_share_validation():
    with pytest.raises(ValueError):
        GeneralBudget(100, share=0)


def test_split_budget_pauses_only_when_the_pool_reserve_is_reached():
    clock = FakeClock()
    budget = GeneralBudget(190, 10.0, share=0.3, pool_share=0.9, clock=clock, sleep=clock.sleep)
    assert budget.limiter.capacity == 57
    budget.observe(RateLimitHeaders(max=190, remaining=100, interval_ms=10000))  # others busy, room left
    assert budget.acquire() == 0.0
    budget.observe(RateLimitHeaders(max=190, remaining=18, interval_ms=10000))  # below the reserve of 19
    assert budget.acquire() == pytest.approx(5.0)


def test_shared_window_is_respected_across_independent_limiters(tmp_path):
    import threading
    import time

    from hubspot_provider.ratelimit import SharedWindowLimiter

    path = tmp_path / "state.json"
    stamps, lock = [], threading.Lock()

    def worker():
        limiter = SharedWindowLimiter(path, 4, 0.5)  # its own file description, like another process
        for _ in range(6):
            limiter.acquire()
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 18
    stamps.sort()
    for i, t in enumerate(stamps):
        assert sum(1 for s in stamps if t <= s < t + 0.5) <= 4, i


def test_shared_pause_and_corrupt_state(tmp_path):
    from hubspot_provider.ratelimit import SharedWindowLimiter

    path = tmp_path / "state.json"
    path.write_text("{not json")  # a writer died mid-write
    clock = FakeClock()
    clock.now = 1000.0
    limiter = SharedWindowLimiter(path, 2, 1.0, clock=clock, sleep=clock.sleep)
    limiter.pause(3.0)
    other = SharedWindowLimiter(path, 2, 1.0, clock=clock, sleep=clock.sleep)
    assert other.acquire() == pytest.approx(3.0)
    assert "token" not in path.read_text()
