"""The package's shape holds: imports point one way, modules and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sagetwin"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every sagetwin module this file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("sagetwin")}


def layer(name: str) -> str:
    """core | emulation | guide | backends.<name> | cli | pytest_plugin | sagetwin (the package itself)."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] == "backends":
        return f"backends.{parts[2]}"
    return parts[1] if len(parts) > 1 else "sagetwin"


def allowed(source: str, target: str) -> bool:
    if target in (source, "core"):
        return True
    if source == "core":
        return False  # the core knows no backend, emulation or workflow
    if source == "emulation":
        return False
    if source == "guide":
        return target == "emulation"
    if source.startswith("backends."):
        # backends use the emulation and the shared SDK plumbing; a backend's commands may prepare the
        # guide's sample data; never another backend's internals
        return target in ("emulation", "guide", "sagemaker_sdk")
    if source == "sagemaker_sdk":
        return False  # the SDK plumbing knows the core only
    if source == "cli":
        return target in ("guide",)
    if source == "aws":
        return target == "emulation"  # the twin is a front door: it reaches backends through the core only
    return True  # the package's __init__ and the pytest plugin are the public face


def test_imports_point_one_way():
    wrong = []
    for path in modules():
        source = layer(module_name(path))
        for target_module in imported(path):
            target = layer(target_module)
            if target_module != "sagetwin" and target != "sagetwin" and not allowed(source, target):
                wrong.append(f"{module_name(path)} imports {target_module} ({source} -> {target})")
    assert not wrong, "\n".join(wrong)


def test_the_direction_check_can_fail():
    assert not allowed("core", "backends.local")
    assert not allowed("emulation", "backends.process")
    assert not allowed("backends.local", "backends.process")
    assert not allowed("cli", "backends.local")
    assert not allowed("aws", "backends.process")
    assert not allowed("sagemaker_sdk", "backends.local")
    assert allowed("backends.local", "sagemaker_sdk") and allowed("backends.sagemaker", "emulation")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path: Path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path} has {len(source.splitlines())} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path}: {', '.join(long)}"


def test_core_and_cli_discover_capabilities_by_type_not_by_attribute_probing():
    probes = []
    for path in [*sorted((PACKAGE / "core").glob("*.py")), PACKAGE / "cli.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr",
                                                                                                  "hasattr"):
                probes.append(f"{path.name}:{node.lineno}")
    assert not probes, probes


def test_no_module_imports_one_that_imports_it_back():
    """No import cycles, also through imports made inside functions (they hide a circle, not break it)."""
    names = {module_name(path): path for path in modules()}
    graph = {name: {t for t in imported(path) if t in names and t != name} for name, path in names.items()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in trail:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in done:
                visit(target, trail + [target])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
