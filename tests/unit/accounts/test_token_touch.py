"""The last-used time of a token is written once a minute per process, not once per request of a
burst that all saw the same old time (accounts.tokens.claim_touch)."""
from accounts import tokens


def test_only_the_first_request_of_a_burst_writes_the_touch():
    tokens._claimed_touches.clear()
    assert tokens.claim_touch("tid-a", now=1000.0)
    assert not any(tokens.claim_touch("tid-a", now=1000.0 + i * 0.01) for i in range(15))
    assert tokens.claim_touch("tid-b", now=1000.5)           # another token has its own minute
    assert not tokens.claim_touch("tid-a", now=1000.0 + tokens.TOUCH_EVERY_SECS - 1)
    assert tokens.claim_touch("tid-a", now=1000.0 + tokens.TOUCH_EVERY_SECS + 1)


def test_claims_stay_bounded():
    tokens._claimed_touches.clear()
    for i in range(tokens._MAX_CLAIMS + 5):
        tokens.claim_touch(f"tid-{i}", now=5.0)
    assert len(tokens._claimed_touches) <= tokens._MAX_CLAIMS
