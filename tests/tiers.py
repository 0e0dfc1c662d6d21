"""The suite's tiers, assigned at collection so that nobody has to remember them.

- ``service``: the test starts (or uses a fixture that starts) a real service: a Mosquitto broker,
  a SeaweedFS S3 server, Chromium, the RTSP camera or any other long-lived process (a daemon, a
  CLI run in the background). Found by following every name a test, its fixtures and the
  ``tests`` helpers they call refer to, down to one of ``SERVICE_STARTERS``.
- ``slow``: marked by hand on heavy tests without a service (mypy, the wheel build, full-size
  models, a resolution against PyPI).
- ``unit``: everything else: ``python -m pytest -m unit`` is the fast inner loop. A unit test that
  starts a service anyway fails on the spot, naming the service, whatever tier is run.
- ``buildtime``: the test needs the build-time stack (PyTorch, ONNX, convert, calibration, NNCF); the
  Jetson lane (``scripts/jetson-lane.sh``) has none of it and leaves these out. Where PyTorch is
  not installed, modules that import it at the top are not collected and the rest are skipped,
  saying why.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import subprocess
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

SERVICE_STARTERS = frozenset({"Mosquitto", "SeaweedFS", "running_daemon", "start_chromium", "Popen"})
BUILDTIME_NAMES = frozenset({"torch", "convert", "calibration", "nncf", "onnx", "onnxscript"})
# Set by the Jetson lane: a tiny bundle made beforehand by the build-time venv (tests/models.py),
# so that the runtime tests using ``tiny_bundle`` run without PyTorch.
PREBUILT_BUNDLE_ENV = "ASL_EDGE_TEST_TINY_BUNDLE"
SERVICE_BINARIES = frozenset({"mosquitto", "weed", "chromium", "chromedriver", "chrome"})
# asl-edge commands that start services: the daemon, the demo (a broker and a daemon), the browser.
DAEMON_COMMANDS = {
    "run": "the asl-edge daemon",
    "demo": "the demo's broker and daemon",
    "screen": "a browser",
}
TORCH_MISSING = importlib.util.find_spec("torch") is None
# Under pytest-xdist (make test: --dist loadgroup) each module runs on one worker, as with
# loadfile, except these, which share one worker and so run one after another: the ones that keep
# both cores busy (training, export, calibration, the full-size checks) and the ones that time a
# real-time source (an RTSP camera killed and frozen, reloads awaited against a clock). Two of them
# at once on a 2-core machine starve each other's frames.
SERIAL_MODULES = frozenset(
    {
        "test_calibration",
        "test_demo",
        "test_engines",
        "test_evaluate",
        "test_export",
        "test_field",
        "test_finetune",
        "test_openvino",
        "test_reload",
    }
)
TESTS = Path(__file__).resolve().parent


def _code_names(code: types.CodeType) -> Iterator[str]:
    for name in code.co_names:
        yield name.split(".")[0]  # an import's dotted name counts as its top-level package
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_names(constant)


def _codes(obj: Any) -> Iterator[types.CodeType]:
    """The code objects of a function, or of every function defined in a class."""
    obj = inspect.unwrap(obj)
    if isinstance(obj, types.FunctionType):
        yield obj.__code__
    elif isinstance(obj, type):
        for member in vars(obj).values():
            function = getattr(member, "__func__", member)
            if isinstance(function, types.FunctionType):
                yield function.__code__


def _is_test_helper(obj: Any) -> bool:
    """A function or class defined in a file under tests/ (whatever its module is called)."""
    return any(Path(code.co_filename).is_relative_to(TESTS) for code in _codes(obj))


def references(obj: Any, seen: set[int] | None = None) -> set[str]:
    """Every global or attribute name ``obj`` uses, and those of the ``tests`` helpers it calls."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return set()
    seen.add(id(obj))
    names: set[str] = set()
    scope = getattr(inspect.unwrap(obj), "__globals__", None)
    for code in _codes(obj):
        for name in _code_names(code):
            names.add(name)
            target = (scope or {}).get(name)
            if target is not None and _is_test_helper(target):
                names |= references(target, seen)
    if isinstance(obj, type):
        for base in obj.__mro__[1:]:
            if _is_test_helper(base):
                names |= references(base, seen)
    return names


def _fixture_functions(item: pytest.Item) -> Iterable[Any]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    provided = {"tiny_bundle"} if os.environ.get(PREBUILT_BUNDLE_ENV) else set()
    return [
        definition.func
        for name, definitions in info.name2fixturedefs.items()
        if name not in provided and name != "_unit_tests_start_no_service"
        for definition in definitions
        if _is_test_helper(definition.func)
    ]


def classify(item: pytest.Item) -> tuple[bool, bool]:
    """(starts a service, needs the build-time stack) for one collected test."""
    names: set[str] = set()
    seen: set[int] = set()
    function = getattr(item, "function", None)
    if function is not None:
        names |= references(function, seen)
    for fixture in _fixture_functions(item):
        names |= references(fixture, seen)
    return bool(names & SERVICE_STARTERS), bool(names & BUILDTIME_NAMES)


@functools.cache
def imports_buildtime_at_top(path: Path) -> bool:
    """Whether a test module imports PyTorch or a build-time package when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        else:
            continue
        if any(module.split(".")[0] in BUILDTIME_NAMES for module in modules):
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if TORCH_MISSING and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return imports_buildtime_at_top(collection_path) or None
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before ``-m`` selects: every test gets ``service`` or, unless marked ``slow``, ``unit``."""
    for item in items:
        service, buildtime = classify(item)
        if service and item.get_closest_marker("service") is None:
            item.add_marker(pytest.mark.service)
        if buildtime and item.get_closest_marker("buildtime") is None:
            item.add_marker(pytest.mark.buildtime)
        if item.get_closest_marker("service") is None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)
        module = item.path.stem
        item.add_marker(pytest.mark.xdist_group("serial" if module in SERIAL_MODULES else module))
        if TORCH_MISSING and item.get_closest_marker("buildtime") is not None:
            item.add_marker(
                pytest.mark.skip(reason="needs PyTorch and the build-time stack: pip install -e '.[convert]'")
            )


LOADGROUP_BROKEN = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker under ``--dist loadgroup``: every test's id must carry its group, else the
    serial modules run beside each other unnoticed (as pytest 9.2 with pytest-xdist 3.8 did); then
    every test fails, saying so."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if ungrouped:
        session.config.stash[LOADGROUP_BROKEN] = (
            f"--dist loadgroup does not group ({ungrouped[0]} has no group in its id), so the serial "
            "modules of tests/tiers.py would run at once: install the pytest and pytest-xdist that "
            "requirements/ci.txt pins"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    broken = item.config.stash.get(LOADGROUP_BROKEN, None)
    if broken:
        pytest.fail(broken, pytrace=False)


def pytest_report_header(config: pytest.Config) -> str | None:
    if TORCH_MISSING:
        return "tiers: no PyTorch here: modules importing it are not collected, tests needing it skip"
    return None


def service_in(args: Any) -> str | None:
    """The service a command line would start, if it is one."""
    argv = [str(part) for part in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
    if not argv:
        return None
    if Path(argv[0]).name in SERVICE_BINARIES:
        return Path(argv[0]).name
    if any(Path(part).name == "rtsp_camera.py" for part in argv):
        return "the RTSP camera"
    for index, part in enumerate(argv):
        if part == "asl_edge" or Path(part).name == "asl-edge":
            command = next((word for word in argv[index + 1 :] if not word.startswith("-")), None)
            return DAEMON_COMMANDS.get(command or "")
    return None


@pytest.fixture(autouse=True)
def _unit_tests_start_no_service(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that starts a service fails at once: it belongs in the service tier (use the
    service fixtures, or mark it ``@pytest.mark.service``)."""
    if request.node.get_closest_marker("unit") is None:
        return
    original = subprocess.Popen.__init__

    def refuse_services(self: subprocess.Popen, args: Any, *rest: Any, **options: Any) -> None:
        service = service_in(args)
        if service:
            pytest.fail(
                f"{request.node.nodeid} is a unit test but starts {service}: mark it "
                "@pytest.mark.service (tests/tiers.py)",
                pytrace=False,
            )
        original(self, args, *rest, **options)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_services)
