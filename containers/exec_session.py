"""A command run inside an app's container through the engine's exec API, with its stdin,
stdout and stderr on one raw socket (what `docker exec -i [-t]` uses).

Why the low-level API: the SDK's `exec_run` waits for the command and collects its output;
a shell session needs the hijacked connection itself (`exec_start(socket=True)`) to relay
bytes both ways while the command runs, `exec_resize` for the terminal size and
`exec_inspect` for the exit code at the end.

Stream format on the socket (the engine's): with a tty, raw bytes both ways (stdout and stderr
merged by the terminal). Without one, the output is multiplexed in frames of an 8-byte header
(stream type 1 stdout / 2 stderr, 3 bytes zero, 4-byte big-endian length) and the payload;
stdin is raw bytes, and its end is a half-close (`close_stdin`).
"""
import os
import signal
import socket
import time

import docker.errors

from containers.engine import ContainerError, client, container_name, engine, reason


class ExecSession:
    """One exec: `sock` is the raw socket (blocking; the caller may make it non-blocking)."""

    def __init__(self, exec_id: str, sock: socket.socket, keep_alive, tty: bool):
        self.exec_id = exec_id
        self.sock = sock
        self.tty = tty
        self._keep_alive = keep_alive  # the SDK's wrapper: closing it would close the socket early
        self._closed = False

    def resize(self, rows: int, columns: int) -> None:
        """Sets the terminal size (tty sessions; ignored by the engine otherwise)."""
        if not self.tty:
            return
        try:
            client().api.exec_resize(self.exec_id, height=rows, width=columns)
        except docker.errors.APIError as exc:
            # Right after start the engine may not know the exec's terminal yet; a resize then
            # is not worth failing the session for.
            if exc.status_code not in (404, 409, 500):
                raise ContainerError(f"Cannot resize terminal: {reason(exc)}") from None

    def close_stdin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def exit_code(self, wait: float = 5.0) -> int | None:
        """The command's exit code once it has ended (polled briefly: the engine marks the
        exec finished shortly after the stream ends), None if it still runs."""
        deadline = time.monotonic() + wait
        while True:
            try:
                info = client().api.exec_inspect(self.exec_id)
            except docker.errors.APIError:
                return None
            if not info.get("Running"):
                return info.get("ExitCode")
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def close(self) -> None:
        """Ends the session: closes the socket and, when the command outlives its client (a
        shell does not always exit on hang-up), stops it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for fn in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close, self._keep_alive.close):
            try:
                fn()
            except OSError:
                pass
        _stop_if_running(self.exec_id)


def _stop_if_running(exec_id: str) -> None:
    # The exec API has no kill. With a local engine (unix socket) the exec's host pid is ours
    # to signal; checked against the engine again right before, so a finished exec's pid is
    # never signalled.
    try:
        info = client().api.exec_inspect(exec_id)
    except (docker.errors.APIError, ContainerError):
        return
    pid = info.get("Pid") or 0
    if not info.get("Running") or pid <= 1 or not client().api.base_url.startswith("http+docker://localhost"):
        return
    for sig in (signal.SIGHUP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            return
        time.sleep(0.2)
        try:
            if not client().api.exec_inspect(exec_id).get("Running"):
                return
        except docker.errors.APIError:
            return


def start(app_id: str, cmd: list[str], tty: bool, rows: int | None = None,
          columns: int | None = None) -> ExecSession:
    """Starts `cmd` in the app's running container. ContainerError when there is no running
    container (the caller answers 409)."""
    api = client().api
    name = container_name(app_id)
    with engine(f"Cannot exec in container {name}"):
        try:
            exec_id = api.exec_create(name, cmd, stdin=True, stdout=True, stderr=True, tty=tty)["Id"]
        except docker.errors.NotFound:
            raise ContainerError(f"Container {name} does not exist") from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise ContainerError(f"Container {name} is not running") from None
            raise
        wrapper = api.exec_start(exec_id, tty=tty, socket=True)
    raw = getattr(wrapper, "_sock", wrapper)
    session = ExecSession(exec_id, raw, wrapper, tty)
    if rows and columns:
        session.resize(rows, columns)
    return session
