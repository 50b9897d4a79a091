"""Operations of the spec that no handler defines answer 501 naming the route, and the published
spec declares 501 exactly on those. (Once every operation is built no route answers 501, so the
mechanism is checked here on a made-up spec and handler module.)"""
import sys
import types

import pytest

from core.errors import NotImplementedYet
from web import unbuilt

SPEC = {"basePath": "/api/v1", "paths": {
    "/things": {"get": {"operationId": "fake_handlers.list_things", "responses": {200: {}}},
                "post": {"operationId": "fake_handlers.add_thing", "responses": {201: {}}}}}}


@pytest.fixture
def handlers():
    module = types.ModuleType("fake_handlers")
    module.list_things = lambda: {"things": []}
    module.__getattr__ = unbuilt.not_implemented("fake_handlers")
    sys.modules["fake_handlers"] = module
    unbuilt.register_routes(SPEC)
    yield module
    del sys.modules["fake_handlers"]
    unbuilt.ROUTES.clear()


def test_an_undefined_operation_answers_501_naming_its_route(handlers):
    with pytest.raises(NotImplementedYet, match=r"POST /api/v1/things is not implemented yet"):
        handlers.add_thing()
    assert handlers.list_things() == {"things": []}


def test_a_name_outside_the_spec_is_still_an_attribute_error(handlers):
    with pytest.raises(AttributeError):
        handlers.no_such_operation  # noqa: B018 - the lookup itself is the test


def test_501_is_declared_only_on_the_unbuilt_operations(handlers):
    import copy
    spec = copy.deepcopy(SPEC)
    declared = unbuilt.declare_501(spec, lambda op_id: getattr(handlers, op_id.split(".")[1]))
    assert declared == ["fake_handlers.add_thing"]
    assert 501 in spec["paths"]["/things"]["post"]["responses"]
    assert 501 not in spec["paths"]["/things"]["get"]["responses"]
