"""Moved to `tests.support.moto_server` (this name stays for the benches and older imports)."""

from tests.support.moto_server import MotoServer, free_port

__all__ = ["MotoServer", "free_port"]
