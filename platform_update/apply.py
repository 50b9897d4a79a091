"""Applying a staged release: the start-up step that installs it (`python -m platform_update apply-staged`).

`make run` runs this step before `python -m cli serve`. Applying means: when a staged release
(platform_update.state) is newer than the installed `berth`, check the artifact's sha256 once more,
then `<python> -m pip install --upgrade <artifact>` into the environment of that Python (the venv
the server runs from), and move the record to `last-apply.json` with the outcome. The server then
starts on the new code and runs its database migrations as on every start. When pip fails, the
old version stays installed, the record stays staged (GET /cloudron/update shows it, with the
error in `last-apply.json`), and the server starts on the old version: a failed update must not
keep the control plane down.
"""
import hashlib
import os
import sys

from core import commands
from core.times import iso, utcnow
from platform_update import state

PIP_TIMEOUT_SECS = 900


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def apply_staged(python: str | None = None, pip_args: tuple[str, ...] = ()) -> dict | None:
    """Install the staged release with `python` (default: this interpreter); None when nothing is
    staged. `pip_args` are extra pip options (tests install into a target folder, never the venv)."""
    record = state.staged()
    if record is None:
        return None
    artifact = os.path.join(state.folder(), record["file"])
    outcome = {"version": record["version"], "file": record["file"], "at": iso(utcnow()), "installed": False}
    if _sha256(artifact) != record["sha256"]:
        outcome["error"] = "the staged artifact no longer matches its sha256; not installed"
        os.unlink(artifact)
        state.finish({**outcome, "installed": False})
        return outcome
    try:
        commands.run([python or sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                      "--upgrade", *pip_args, artifact], timeout=PIP_TIMEOUT_SECS)
        outcome["installed"] = True
    except (commands.CommandError, OSError) as e:
        outcome["error"] = str(e)
    state.finish(outcome)
    return outcome
