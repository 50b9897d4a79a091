"""HTTP handlers, one module per tag of openapi.yaml.

Handlers read the request, call domain code and serialise the answer; nothing else.
Operations of the spec whose function a module does not define yet resolve, through the
module's `__getattr__ = not_implemented(__name__)`, to a function answering 501 that names
the route, so the whole contract is served from day one and progress is measurable.
"""
import flask

from audit import Actor
from errors import NotImplementedYet

# operationId -> "METHOD /path" of every operation in the spec.
ROUTES = {}


def register_routes(spec):
    ROUTES.clear()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                ROUTES[op["operationId"]] = f"{method.upper()} {spec['basePath']}{path}"


def _route(operation_id):
    if not ROUTES:  # imported outside a running server (tools, checks): read the spec now
        import server
        register_routes(server.load_spec())
    return ROUTES.get(operation_id)


def not_implemented(module_name):
    def __getattr__(name):
        route = _route(f"{module_name}.{name}") if not name.startswith("__") else None
        if route is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

        def answer_501(*args, **kwargs):
            raise NotImplementedYet(f"{route} is not implemented yet")
        answer_501.not_implemented = True
        return answer_501
    return __getattr__


def actor(token_info=None):
    """Who is making this request, for permission checks and the event log."""
    ip = flask.request.remote_addr
    if not token_info:
        return Actor(ip=ip)
    return Actor(user_id=token_info["sub"], username=token_info.get("username"),
                 role=token_info["role"], ip=ip)


def client_ip():
    return flask.request.remote_addr
