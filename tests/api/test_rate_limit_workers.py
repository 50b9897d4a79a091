"""The per-token rate limit is exact across the workers of one server (BERTH_WORKERS=2).

The attack: a budget kept in each worker's memory let a client spread its requests over several
connections (so over both workers) and make twice its budget. The budget now lives in a file all
workers share (web/rate_limit.py)."""
import concurrent.futures

import requests

from support.harness import Api, BerthServer

BUDGET = 6  # per minute: refills one request per 10 s, far longer than the burst below


def test_spreading_requests_over_two_workers_gets_exactly_the_budget():
    server = BerthServer(workers=2, env={"BERTH_RATE_LIMIT": str(BUDGET)}).start()
    try:
        token = Api(server.api).post("/cloudron/activate", json={
            "username": "boss", "email": "b@example.com", "password": "Boss-pass-1"}).json()["token"]

        def burst(_):
            # One connection per request: each is accepted by whichever worker wins it.
            return [requests.get(server.api + "/profile", headers={"Authorization": f"Bearer {token}",
                                                                   "Connection": "close"}, timeout=30)
                    for _ in range(3)]

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = [r for batch in pool.map(burst, range(12)) for r in batch]
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * BUDGET + [429] * (len(answers) - BUDGET), codes
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["message"] == "API rate limit exceeded for this token"
    finally:
        server.cleanup()
