"""Who is asking, from the request: the actor for permission checks and the event log."""
import flask

from eventlog import Actor


def actor(token_info=None):
    """Who is making this request, for permission checks and the event log."""
    ip = flask.request.remote_addr
    if not token_info:
        return Actor(ip=ip)
    return Actor(user_id=token_info["sub"], username=token_info.get("username"),
                 role=token_info["role"], ip=ip)


def client_ip():
    return flask.request.remote_addr
