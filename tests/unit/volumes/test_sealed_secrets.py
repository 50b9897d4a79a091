"""Share secrets are stored sealed (volumes.records): the database holds no password in clear."""
from models.volumes import Volume
from volumes import records


def test_secrets_are_sealed_in_the_database_and_open_for_mounting(db):
    options = {"host": "nas.test", "remoteDir": "share", "username": "u", "password": "Cifs-pass-9"}
    Volume.create(id="v1", name="nas", host_path="/x", mount_type="cifs", mount_options=records._seal("v1", options))
    raw = Volume.select(Volume.mount_options).where(Volume.id == "v1").tuples().first()[0]
    assert "Cifs-pass-9" not in str(raw) and raw["password"].startswith("v1:") and raw["host"] == "nas.test"
    volume = Volume.get_by_id("v1")
    assert records.mount_options(volume) == options
    assert records.to_api(volume)["mountOptions"]["password"] != "Cifs-pass-9"
    # sealed for one volume, it does not open as another's (a row copied across gives nothing)
    volume.id = "v2"
    assert records.mount_options(volume)["password"] == ""
