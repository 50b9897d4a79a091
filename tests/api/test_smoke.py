def test_status_is_public(berth):
    import requests
    r = requests.get(berth.api + "/cloudron/status")
    assert r.status_code == 200
    assert r.json()["version"]
