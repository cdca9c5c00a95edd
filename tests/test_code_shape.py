"""The shape the analysis code keeps (issue 16, part 4): no function over 80 lines in evaluation, diagnostics or
plotting, and no diagnostic that probes a model's internals instead of asking its declared capabilities."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "mesodyn"
ANALYSIS = sorted([SOURCE / "evaluation.py", SOURCE / "plotting.py", *(SOURCE / "diagnostics").glob("*.py")])
MAX_LINES = 80
"""Longest function, counted from its ``def`` line to the last line of its body, docstring included."""


def _functions(path: Path) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in ``path``, nested ones included."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


@pytest.mark.parametrize("path", ANALYSIS, ids=[str(p.relative_to(SOURCE)) for p in ANALYSIS])
def test_no_function_of_the_analysis_code_is_over_80_lines(path):
    long = {name: n for name, n in _functions(path) if n > MAX_LINES}
    assert not long, f"{path.name}: functions over {MAX_LINES} lines (split them by concept): {long}"


def test_the_counter_sees_every_function():
    # a counter that found nothing would pass the test above vacuously
    names = dict(_functions(SOURCE / "plotting.py"))
    assert "plot_rel_rmse" in names and "style" in names
    assert any(name.endswith(".record") for name, _ in _functions(SOURCE / "diagnostics" / "rollouts.py"))


def test_the_diagnostics_ask_a_model_its_capabilities_instead_of_probing_its_internals():
    """A diagnostic reads what a model declares (:class:`mesodyn.registry.Capabilities`) and calls its documented
    methods; it never looks inside (``free_energy``, ``local``, ``derivative_mode``) or probes ``stepper``."""
    internals = ("free_energy", "derivative_mode", '"stepper"', '"local"')
    for path in [*(SOURCE / "diagnostics").glob("*.py"), SOURCE / "evaluation.py", SOURCE / "rollout.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr"):
                probe = ast.unparse(node)
                assert not any(word in probe for word in internals), f"{path.name}: {probe}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("free_energy", "derivative_mode"), f"{path.name}: .{node.attr}"
