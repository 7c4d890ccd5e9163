from __future__ import annotations

from grok2api.admin.session_throttle import LoginThrottle


def test_locks_out_after_failures_in_the_window_and_doubles_each_time() -> None:
    t = LoginThrottle(max_failures=3, window=60, lockout=10, max_lockout=25)
    for i in range(2):
        t.failure("ip", now=100 + i)
    assert t.retry_after("ip", now=102) == 0
    t.failure("ip", now=102)
    assert t.retry_after("ip", now=102) == 10
    assert t.retry_after("ip", now=112) == 0
    for i in range(3):
        t.failure("ip", now=120 + i)
    assert t.retry_after("ip", now=122) == 20  # second lockout: doubled
    for i in range(3):
        t.failure("ip", now=200 + i)
    assert t.retry_after("ip", now=202) == 25  # capped


def test_old_failures_fall_out_of_the_window_and_success_forgets() -> None:
    t = LoginThrottle(max_failures=2, window=60, lockout=10)
    t.failure("ip", now=0)
    t.failure("ip", now=61)
    assert t.retry_after("ip", now=61) == 0
    t.success("ip")
    t.failure("ip", now=62)
    assert t.retry_after("ip", now=62) == 0
    assert t.retry_after("someone-else") == 0


def test_memory_is_bounded() -> None:
    t = LoginThrottle(max_failures=5, window=60, max_clients=100)
    for i in range(1000):
        t.failure(f"ip-{i}", now=float(i))
    assert len(t._records) <= 100
    assert t.retry_after("ip-999", now=999) == 0
