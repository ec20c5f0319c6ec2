"""The test suite itself (issue 16, case 10): an optional reference library skips only the
tests that need it, and ``make test-slow`` (``-m slow``) collects the long tests."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pytest(args: list[str], tmp_path: Path, hide: str | None = None) -> str:
    path = [str(ROOT)]
    if hide:   # a module of that name that fails to import, ahead of the installed one
        (tmp_path / f"{hide}.py").write_text("raise ImportError('hidden by the test')\n")
        path.insert(0, str(tmp_path))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    return run.stdout + run.stderr


def test_missing_torchattacks_skips_only_its_four_tests(tmp_path):
    out = _pytest(["-rs", "-k", "torchattacks", "tests/zoo/test_attacks.py"], tmp_path,
                  hide="torchattacks")
    assert "4 skipped" in out and "torchattacks not installed" in out, out
    assert int(out.split(" deselected")[0].split()[-1]) > 20, out   # the others still run


def test_make_test_slow_collects_the_slow_tests(tmp_path):
    makefile = (ROOT / "Makefile").read_text()
    assert "-m slow" in makefile.split("test-slow:")[1].splitlines()[1]
    module = "tests/zoo/test_bundled_accuracy.py"
    out = _pytest(["--co", "-m", "slow", module], tmp_path)
    collected = {line.split("::")[1].split("[")[0] for line in out.splitlines() if "::" in line}
    marked = {node.name for node in ast.parse((ROOT / module).read_text()).body
              if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
              and any("slow" in ast.unparse(d) for d in node.decorator_list)}
    assert marked and collected == marked, out   # the marked ones, read from the source
