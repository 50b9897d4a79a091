"""Operations of the spec that no handler defines yet answer 501 naming the route.

A handler module ends with `__getattr__ = not_implemented(__name__)`: any operationId of the
spec that the module does not define resolves to a function answering 501, so the whole
contract is served from day one and progress is measurable (`berth api-coverage`). The list of
implemented operations is checked in (tests/api/implemented_operations.txt), so a misspelt
handler cannot hide as "not implemented".
"""
import copy

from core.errors import NotImplementedYet

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
        from web import spec
        register_routes(spec.load_spec())
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


NOT_IMPLEMENTED = {"description": "Not implemented yet: Berth does not serve this operation yet",
                   "schema": {"$ref": "#/definitions/Error"}}


def declare_501(spec, resolve) -> list[str]:
    """Declare the 501 answer in `spec` (the one the server publishes) on every operation whose
    handler is the stub: the published contract then says truthfully what such an operation
    answers, and stops saying it as soon as a handler is built. `resolve(operation_id)` is the
    function that will serve the operation. Returns the operationIds it declared 501 on."""
    unbuilt = []
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "operationId" in op:
                if getattr(resolve(op["operationId"]), "not_implemented", False):
                    op.setdefault("responses", {}).setdefault(501, copy.deepcopy(NOT_IMPLEMENTED))
                    unbuilt.append(op["operationId"])
    return unbuilt
