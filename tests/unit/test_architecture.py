"""Architecture rules import-linter cannot express (it cannot name a submodule of a library)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("agents", "tools", "graphs", "prompts", "ui", "store", "evals")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]


def test_only_agent_tools_import_langchain_tools():
    offenders = [
        str(p.relative_to(REPO))
        for p in _modules()
        if "langchain_core.tools" in _imports(p)
        and not p.is_relative_to(REPO / "tools" / "agent_tools")
    ]
    assert offenders == []


def test_tools_top_level_holds_only_errors_and_clock():
    top = sorted(p.name for p in (REPO / "tools").glob("*.py"))
    assert top == ["__init__.py", "clock.py", "errors.py"]


def test_the_scan_sees_the_agent_tools():
    tool_modules = list((REPO / "tools" / "agent_tools").glob("*.py"))
    assert any("langchain_core.tools" in _imports(p) for p in tool_modules)
