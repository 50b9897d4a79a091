"""The shape of the code base, checked: import rules, one home per side effect, no shadowing,
module size, and the list of built operations. Fast and offline (part of `make unit`)."""
import ast
import configparser
import importlib
import importlib.metadata
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 450   # "no module over ~400 lines": a little slack for docstrings


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg


def _packages():
    return _setup_cfg()["options.packages.find"]["include"].replace("*", "").split()


def _app_files():
    """Every Python file Berth installs (not tests, not bench)."""
    files = [os.path.join(ROOT, "wsgi.py")]
    for pkg in _packages():
        for dirpath, _, names in os.walk(os.path.join(ROOT, pkg)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
    return sorted(files)


def _imports(path):
    """(module imported, line) for every import statement of a file, including nested ones."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def _rel(path):
    return os.path.relpath(path, ROOT)


def _offenders(allowed, is_forbidden):
    return [f"{_rel(p)}:{line} imports {name}" for p in _app_files() if _rel(p) not in allowed
            for name, line in _imports(p) if is_forbidden(name)]


def test_import_linter_contracts_hold():
    """The layers and forbidden imports declared in setup.cfg [importlinter]."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_only_the_command_wrapper_runs_programs():
    assert _offenders({"core/commands.py"}, lambda n: n == "subprocess" or n.startswith("subprocess.")) == []
    shell = [f"{_rel(p)}: os.{fn}" for p in _app_files() for fn in ("system", "popen")
             if f"os.{fn}(" in open(p).read()]
    assert shell == []


def test_only_containers_imports_docker():
    docker_users = _offenders(set(), lambda n: n == "docker" or n.startswith("docker."))
    assert [o for o in docker_users if not o.startswith("containers/")] == []


def test_handlers_know_no_sql_docker_or_processes():
    def forbidden(name):
        return name.split(".")[0] in {"models", "peewee", "docker", "subprocess", "containers", "reverse_proxy",
                                      "backup_storage"} or name.startswith(("core.commands", "core.data_paths"))
    handlers = {_rel(p) for p in _app_files() if not _rel(p).startswith("handlers/")}
    assert _offenders(handlers, forbidden) == []


def test_environment_is_read_only_in_config():
    """Configuration comes from core.config (one line naming a bad variable); copying the
    environment for a child process is fine, reading a setting from it elsewhere is not."""
    readers = []
    for path in _app_files():
        if _rel(path) == "core/config.py":
            continue
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("get", "getenv") and \
                    ast.unparse(node.value) in ("os.environ", "os"):
                readers.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                readers.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
    assert readers == []


def test_nothing_installed_shadows_the_standard_library_or_a_dependency():
    ours = _packages() + ["wsgi"]
    others = {name for name, dists in importlib.metadata.packages_distributions().items()
              if any(d.lower() != "berth" for d in dists)}
    clashes = [n for n in ours if n in sys.stdlib_module_names or n in others]
    assert clashes == []
    for name in ours:   # each resolves to this repository, not to something installed elsewhere
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin.startswith(ROOT + os.sep), (name, spec)


def test_no_module_is_too_long():
    long = [(_rel(p), n) for p in _app_files() if (n := sum(1 for _ in open(p))) > MAX_LINES]
    assert long == []


def test_every_task_body_and_schedule_action_name_resolves():
    from tasks import registry
    for name in registry.BODIES:
        assert callable(registry.body(name)), name
    for name in registry.ACTIONS:
        assert callable(registry.action(name)), name


def _operations():
    from web import spec
    return [op_id for op_id, *_ in spec.operations(spec.load_spec())]


def _implemented():
    with open(os.path.join(ROOT, "tests", "api", "implemented_operations.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("op_id", _implemented())
def test_built_operation_resolves_to_its_handler(op_id):
    """A misspelt or lost handler would silently become a 501 stub; this list says which
    operations are built."""
    module, _, name = op_id.rpartition(".")
    assert name in vars(importlib.import_module(module)), f"{op_id} resolves to the 501 stub"


def test_the_list_of_built_operations_is_complete():
    built = [op for op in _operations()
             if op.rpartition(".")[2] in vars(importlib.import_module(op.rpartition(".")[0]))]
    assert sorted(set(built) - set(_implemented())) == [], "add these to tests/api/implemented_operations.txt"


AREA_PACKAGES = ("accounts", "addons", "apps", "backups", "backup_storage", "certificates", "containers",
                 "dns_providers", "domains", "eventlog", "log_streams", "mail", "mail_server", "platform_settings",
                 "system_services", "reverse_proxy", "core", "tasks", "system_monitor", "volumes",
                 "appstore", "file_access", "metrics", "platform_update", "deployments")


def test_public_functions_of_the_area_packages_have_type_hints():
    missing = []
    for path in _app_files():
        if not _rel(path).startswith(AREA_PACKAGES):
            continue
        for node in ast.parse(open(path).read()).body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
                continue
            args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
            args += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            if node.returns is None or any(a.annotation is None for a in args):
                missing.append(f"{_rel(path)}:{node.lineno} {node.name}")
    assert missing == []
