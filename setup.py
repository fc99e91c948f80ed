"""Build hook: the wheel carries the deployed configuration as package data.

`template.yaml`, `statemachine/` and `functions/` stay where SAM builds them from (the repository
root, the one source). Building a wheel copies them into `dynashift/_deployed/` of the build
tree, laid out as in the repository, so that an installed `dynashift migrate` or `demo` runs the
same files (`dynashift.workflow.deployed` finds them with importlib.resources). Nothing is
copied into the source tree: an editable install reads the repository's files directly.
Everything else is in pyproject.toml.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def shipped() -> tuple[str, ...]:
    """`SHIPPED` of dynashift.workflow.deployed (read, not imported: the list has one home)."""
    path = HERE / "src" / "dynashift" / "workflow" / "deployed.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "SHIPPED" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError(f"{path}: no SHIPPED")


class BuildWithDeployed(build_py):
    """build_py, then the deployed configuration into dynashift/_deployed/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "dynashift" / "_deployed"
        shutil.rmtree(target, ignore_errors=True)
        for name in shipped():
            source = HERE / name
            if source.is_dir():
                shutil.copytree(
                    source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithDeployed})
