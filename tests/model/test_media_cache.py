import threading

import torch

from aurora_serve.model.media_cache import ProcessedMediaCache, media_digest


def t(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float32)  # 4 bytes per element


def test_lru_is_bounded_by_bytes_and_evicts_the_least_recent():
    c = ProcessedMediaCache(max_bytes=100)
    a = t(10)
    c.put("a", a)
    c.put("b", t(10))
    assert c.get("a") is a  # a is now the most recent
    c.put("c", t(10))  # 120 bytes > 100: evicts b
    assert c.get("b") is None and c.get("a") is not None and c.get("c") is not None
    c.put("huge", t(30))  # larger than the whole budget: not stored, nothing evicted
    assert c.get("huge") is None and len(c) == 2
    assert (c.hits, c.misses) == (3, 2)


def test_zero_budget_disables():
    c = ProcessedMediaCache(max_bytes=0)
    c.put("a", t(1))
    assert c.get("a") is None


def test_digest_of_path_equals_digest_of_bytes(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "m").write_bytes(data)
    assert media_digest(str(tmp_path / "m")) == media_digest(data) != media_digest(data[:-1])


def test_concurrent_puts_keep_the_byte_count_consistent():
    c = ProcessedMediaCache(max_bytes=4 * 50)

    def worker(k):
        for i in range(200):
            c.put(f"{k}-{i}", t(5))
            c.get(f"{k}-{i - 1}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert c._bytes == sum(v.numel() * 4 for v in c._entries.values()) <= 200
