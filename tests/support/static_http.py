"""A folder served over plain HTTP on a free loopback port (release feeds, app catalogs, their
artifacts and icons), for as long as the `with` block runs."""
import contextlib
import functools
import http.server
import threading


@contextlib.contextmanager
def served(folder):
    """Yields the base URL (http://127.0.0.1:<port>) of `folder`."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
