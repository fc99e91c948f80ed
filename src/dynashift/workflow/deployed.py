"""Where the local runner finds the deployed configuration: the template, the definition and the
handlers — the files `sam build` deploys.

The repository's `template.yaml`, `statemachine/` and `functions/` are the one source. An
installed wheel carries a copy of them as package data, `dynashift/_deployed/` (laid out like
the repository root; `setup.py`'s build step copies them, and tests/functional/
test_wheel_install.py checks the copies are identical), found with `importlib.resources`. A
source checkout (an editable install, the tests) has no such directory and reads the
repository's own files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The source checkout this module sits in (src/dynashift/workflow/ -> the repository root).
CHECKOUT_ROOT = Path(__file__).resolve().parents[3]
#: The package-data directory of an installed wheel.
PACKAGED = "_deployed"
#: What is shipped, relative to the root (the build step copies exactly these).
SHIPPED = ("template.yaml", "statemachine", "functions")


def deployed_root() -> Path:
    """The directory holding `template.yaml`, `statemachine/` and `functions/`: the packaged
    copy when the package carries one, else the source checkout."""
    packaged = resources.files("dynashift") / PACKAGED
    if packaged.is_dir() and isinstance(packaged, Path):
        return packaged
    return CHECKOUT_ROOT


ROOT = deployed_root()
DEFINITION = ROOT / "statemachine" / "migration.asl.json"
FUNCTIONS = ROOT / "functions"
TEMPLATE = ROOT / "template.yaml"
