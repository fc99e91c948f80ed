"""The moto server the functional tests and benchmarks talk HTTP to: `dynashift.emulator`'s
one starter, under the names the tests use.

The server is `python -m dynashift.emulator`: moto's own server with the patches that make it
closer to AWS where dynashift depends on AWS's behaviour (one sequence number per stream record,
exports in AWS's layout); `src/dynashift/emulator.py` says which and why.
"""

from __future__ import annotations

from dynashift.emulator import Emulator, free_port, serial_stream_records

__all__ = ["MotoServer", "free_port", "serial_stream_records"]


class MotoServer(Emulator):
    """A patched moto server subprocess on a free loopback port (`Emulator`)."""

    def start(self, timeout: float = 30.0) -> MotoServer:
        super().start(timeout)
        return self
