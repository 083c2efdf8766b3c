"""The per-device cache in front of token and artifact look-ups: bounded, short-lived, and forgetting a
device at once when its token or jobs change, so a cached answer is never older than its TTL."""

from __future__ import annotations

from mcuota.server.ttlcache import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl():
    clock = FakeClock()
    cache: TtlCache[int] = TtlCache(ttl=2.0, clock=clock)
    cache.put("token-a", owner=1, value=11)
    clock.now += 1.9
    assert cache.get("token-a") == 11
    clock.now += 0.2
    assert cache.get("token-a") is None


def test_size_bound_evicts_the_least_recently_used():
    cache: TtlCache[int] = TtlCache(size=2, ttl=60.0, clock=FakeClock())
    cache.put("a", 1, 1)
    cache.put("b", 2, 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3, 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_forgetting_a_device_drops_only_its_entries():
    cache: TtlCache[str] = TtlCache(ttl=60.0, clock=FakeClock())
    cache.put("token-of-7", 7, "device 7")
    cache.put("release-3-of-7", 7, "may download")
    cache.put("token-of-8", 8, "device 8")
    cache.forget_owner(7)
    assert cache.get("token-of-7") is None
    assert cache.get("release-3-of-7") is None
    assert cache.get("token-of-8") == "device 8"
    cache.clear()
    assert cache.get("token-of-8") is None
