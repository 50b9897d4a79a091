"""Long operations as a person sees them: a progress bar fed by the task's percent and message,
the task's result at the end, and log streams followed across disconnects."""
import json
import time

import click
import httpx

from cli.client import ApiError, Client

POLL_SECS = 0.5


def wait_task(client: Client, task_id, quiet: bool = False, label: str = "") -> dict:
    """Follow the task to its end; return it when it succeeded, raise ApiError when it did not.
    On a terminal: a progress bar; otherwise (logs, CI) one `[ 40%] message` line per change."""
    err = click.get_text_stream("stderr")
    show = _Bar(label or f"Task {task_id}", err) if not quiet and err.isatty() else _Lines(err, quiet)
    task = client.get(f"/tasks/{task_id}")
    try:
        with show:
            while True:
                show.update(int(task.get("percent") or 0), task.get("message") or "")
                if not task["pending"] and not task["active"]:
                    break
                time.sleep(POLL_SECS)
                task = client.get(f"/tasks/{task_id}")
    except KeyboardInterrupt:
        raise click.ClickException(f"Stopped waiting; task {task_id} goes on on the server "
                                   f"(`berth tasks logs {task_id} -f`, `berth tasks stop {task_id}`)") from None
    if not task.get("success"):
        error = task.get("error") or {}
        raise ApiError(f"Task {task_id} failed: {error.get('message') or task.get('message') or 'no reason given'}")
    return task


class _Bar:
    def __init__(self, label, stream):
        self.bar = click.progressbar(length=100, label=label, show_eta=False, item_show_func=lambda m: m,
                                     file=stream)
        self.shown = 0

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, percent, message):
        self.bar.update(max(0, percent - self.shown), message[:60])
        self.shown = max(self.shown, percent)


class _Lines:
    def __init__(self, stream, quiet):
        self.stream, self.quiet, self.last = stream, quiet, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, percent, message):
        if not self.quiet and (percent, message) != self.last:
            click.echo(f"[{percent:3d}%] {message}", file=self.stream)
            self.last = (percent, message)


def started(client: Client, answer: dict, wait: bool, quiet: bool, label: str = "") -> dict:
    """After a 202 {taskId}: wait for it (default) or print the task id for later."""
    task_id = answer["taskId"]
    if not wait:
        if not quiet:
            click.echo(f"Task {task_id} started (`berth tasks logs {task_id} -f` to follow it)")
        return answer
    task = wait_task(client, task_id, quiet, label)
    if not quiet:
        click.echo(task.get("message") or "Done")
    return task


def follow(client: Client, path: str, lines: int = 10, plain: bool = True, retries: int = 30) -> None:
    """Print a log stream (Server-Sent Events) until the server ends it for good. A dropped
    connection reconnects with Last-Event-ID, so no line is lost or repeated; a finished log
    answers 204 and ends the loop."""
    last_id, failures, retry_ms = None, 0, 3000
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with client.stream("GET", path, params={"lines": lines, "format": "json"}, headers=headers,
                               timeout=httpx.Timeout(10, read=None)) as response:
                if response.status_code == 204:
                    return
                failures = 0
                event_id, data = None, []
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif line.startswith("retry:"):
                        retry_ms = int(line[6:].strip() or 3000)
                    elif line == "" and data:
                        _print_event("\n".join(data), plain)
                        last_id, event_id, data = event_id or last_id, None, []
            if last_id is None:
                return  # ended before any line: nothing to resume
        except ApiError as e:
            if "Cannot reach" not in str(e):
                raise
            failures += 1
            if failures > retries:
                raise
        except httpx.HTTPError:
            failures += 1
            if failures > retries:
                raise ApiError(f"Lost the log stream of {client.server} and could not reconnect") from None
        time.sleep(min(retry_ms, 3000) / 1000)


def _print_event(data: str, plain: bool) -> None:
    try:
        event = json.loads(data)
    except ValueError:
        click.echo(data)
        return
    if not plain or not isinstance(event, dict):
        click.echo(data)
        return
    click.echo(event.get("message", ""))
