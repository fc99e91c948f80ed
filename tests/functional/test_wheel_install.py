"""An installed wheel runs the workflow: `pip install .` in a fresh venv, `dynashift demo` to READY.

The wheel is built offline from a copy of the working tree (`pip wheel --no-build-isolation`:
setuptools comes from the dev extras), installed without dependencies into a new venv, and run
from a directory outside the repository. The new venv sees the current venv's site-packages for
the dependencies only (a `.pth` line: the `.pth` files in there, the editable install's among
them, are not processed), and the test checks that `dynashift` itself is imported from the new
venv — so the run reads the definition, the template and the handlers the wheel carries.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from dynashift.workflow.deployed import CHECKOUT_ROOT, PACKAGED, SHIPPED

pytestmark = pytest.mark.slow

#: Not part of a fresh clone (or rebuilt by the build itself).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "node_modules",
    ".aws-sam",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
)


def _repository_files(name: str) -> dict[str, bytes]:
    """The shipped files under `name` (a file or a directory of the repository), by path."""
    root = CHECKOUT_ROOT / name
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(CHECKOUT_ROOT).as_posix(): p.read_bytes()
        for p in paths
        if "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _run(args: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args[:3]} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_wheel_installed_in_a_fresh_venv_runs_the_demo_to_ready(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(CHECKOUT_ROOT, tree, ignore=_NOT_SOURCES)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = ["-q", "--no-deps", "--no-index"]
    _run(
        [*pip, "wheel", *offline, "--no-build-isolation", "-w", str(dist), str(tree)],
        cwd=tmp_path,
        timeout=120,
    )
    (wheel,) = dist.glob("dynashift-*.whl")

    # The wheel carries the deployed configuration, identical to the repository's files.
    prefix = f"dynashift/{PACKAGED}/"
    with zipfile.ZipFile(wheel) as zf:
        packaged = {
            n.removeprefix(prefix): zf.read(n) for n in zf.namelist() if n.startswith(prefix)
        }
    expected: dict[str, bytes] = {}
    for name in SHIPPED:
        expected.update(_repository_files(name))
    assert sorted(packaged) == sorted(expected)
    assert [n for n in expected if packaged[n] != expected[n]] == []

    # A fresh venv; the dependencies come from this venv's site-packages, dynashift from the wheel.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    new_site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=tmp_path,
            timeout=30,
        ).strip()
    )
    (new_site / "_dependencies.pth").write_text(
        "".join(f"{p}\n" for p in site.getsitepackages()), encoding="utf-8"
    )
    _run(
        [*pip, "--python", str(python), "install", *offline, str(wheel)],
        cwd=tmp_path,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    located = _run(
        [
            str(python),
            "-c",
            "import dynashift, dynashift.workflow.deployed as d; print(dynashift.__file__); "
            "print(d.ROOT)",
        ],
        cwd=elsewhere,
        timeout=60,
        env=env,
    ).split()
    assert Path(located[0]).is_relative_to(new_site), located
    assert Path(located[1]) == new_site / "dynashift" / PACKAGED, located

    # The smallest demo: 100 items (its minimum), one segment, a few live writes a second.
    demo = ["demo", "--items", "100", "--segments", "1", "--write-rate", "5"]
    out = _run(
        [str(env_dir / "bin" / "dynashift"), *demo],
        cwd=elsewhere,
        timeout=180,
        env=env,
    )
    assert "\nREADY\n" in out, out[-2000:]
