"""Benchmarks against a moto server in a separate process (`python -m bench`, README)."""

from __future__ import annotations

import os


def emulator_credentials(region: str | None = None) -> None:
    """Fake credentials for the emulator (kept if the environment has some), and the region."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    if region is not None:
        os.environ["AWS_DEFAULT_REGION"] = region
