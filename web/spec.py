"""openapi.yaml, the contract: loaded once per process and walked by operation."""
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
SPEC_PATH = os.path.join(ROOT, "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def operations(spec):
    """Yield (operationId, METHOD, path, operation dict) for every operation of the spec."""
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield op["operationId"], method.upper(), path, op
