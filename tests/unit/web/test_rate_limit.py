"""web.rate_limit: the per-token budget every worker of a server shares through one file."""
import multiprocessing
import os

from web import rate_limit


def _charge_many(path, token_id, budget, count, results):
    buckets = rate_limit.SharedBuckets(path)
    results.put(sum(buckets.charge(token_id, budget) is None for _ in range(count)))


def test_two_processes_sharing_the_file_grant_a_token_exactly_its_budget(tmp_path):
    # The attack on a per-process budget: spread the requests over the workers, get N x budget.
    path = str(tmp_path / "run" / "rate-limit")
    results = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(target=_charge_many,
                                                           args=(path, "tid-a", 50, 40, results))
               for _ in range(2)]
    for w in workers:
        w.start()
    granted = results.get(timeout=60) + results.get(timeout=60)
    for w in workers:
        w.join(30)
    assert granted == 50  # 80 tries, one minute of budget: refill over the run is < 1 request
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_tokens_have_separate_buckets_and_a_refusal_says_when_to_retry(tmp_path):
    buckets = rate_limit.SharedBuckets(str(tmp_path / "rl"))
    assert [buckets.charge("tid-a", 2) for _ in range(2)] == [None, None]
    wait = buckets.charge("tid-a", 2)
    assert wait is not None and 0 < wait <= 30
    assert buckets.charge("tid-b", 2) is None


def test_a_second_open_sees_the_same_buckets_and_a_slot_idle_for_a_minute_is_reused(tmp_path, monkeypatch):
    path = str(tmp_path / "rl")
    first = rate_limit.SharedBuckets(path, slots=4)
    assert first.charge("tid-a", 1) is None
    second = rate_limit.SharedBuckets(path, slots=4)
    assert second.charge("tid-a", 1) is not None       # same bucket, already empty
    now = rate_limit.time.monotonic()
    monkeypatch.setattr(rate_limit.time, "monotonic", lambda: now + 61)
    for n in range(8):                                  # more tokens than slots: stale ones reused
        assert second.charge(f"tid-{n}", 1) is None
    assert second.charge("tid-a", 1) is None            # a minute later its bucket is full again


def test_a_file_from_another_boot_is_cleared(tmp_path, monkeypatch):
    path = str(tmp_path / "rl")
    assert rate_limit.SharedBuckets(path).charge("tid-a", 1) is None
    monkeypatch.setattr(rate_limit, "_boot_id", lambda: b"x" * 16)
    assert rate_limit.SharedBuckets(path).charge("tid-a", 1) is None


def test_local_buckets_count_in_process():
    buckets = rate_limit.LocalBuckets()
    assert buckets.charge("tid-a", 1) is None
    assert buckets.charge("tid-a", 1) is not None
