"""The Flask view of each operation, with Connexion's decorator chain built once.

Why: Connexion's FlaskOperation builds its decorators (sync/async, parameters, response) again
on every request, and building the parameter decorator inspects the handler's signature
(inspect.signature) each time: measured with bench/api.py, a tenth of the Flask side of
`GET /users`. The chain depends only on the handler and the app's settings, so it is built here
once per operation at start-up and then called as Connexion calls it: with the request Connexion's
Flask framework makes from the operation of the request context.
"""
import functools

from connexion.apps.flask import FlaskOperation
from connexion.decorators import FlaskDecorator


class PrecompiledView:
    def __init__(self, operation: FlaskOperation):
        self.decorator = FlaskDecorator(pythonic_params=operation.pythonic_params,
                                        jsonifier=operation.jsonifier)
        self.function = self.decorator.decorate(operation._fn)
        self.operation_id = operation.operation_id
        functools.update_wrapper(self, operation._fn)

    def __call__(self, *args, **kwargs):
        # As connexion.decorators.main.WSGIDecorator's wrapper: path parameters reach the handler
        # through the request (uri parser), not through Flask's view arguments.
        decorator = self.decorator
        return self.function(decorator.framework.get_request(uri_parser=decorator.uri_parser))


def precompile_on_first_request(flask_app) -> None:
    """Connexion adds the operations to Flask when its middleware stack is built, on the first
    request (or the lifespan start), not in create_app: precompile then, once, before Flask looks
    up the view of that first request."""
    done = []

    def precompile_once():
        if not done:
            done.append(precompile(flask_app))

    flask_app.before_request(precompile_once)


def precompile(flask_app) -> int:
    """Replace every Connexion operation view of `flask_app` by its PrecompiledView; returns how
    many. Views of another kind (or of a Connexion without `_fn`) are left as they are."""
    count = 0
    for endpoint, view in list(flask_app.view_functions.items()):
        if isinstance(view, FlaskOperation) and hasattr(view, "_fn"):
            flask_app.view_functions[endpoint] = PrecompiledView(view)
            count += 1
    return count
