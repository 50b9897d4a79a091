"""The services Berth runs for the server (nginx, Docker, the addon databases, mail): status, logs, limits."""
