"""Hardware-in-the-loop: emulated voice modems on pseudo-terminals, scriptable in-process or over TCP.

Nothing in gateway/ imports this package. `Sim7600Emulator` is imported lazily so that the control
client (`python -m hil ctl`) starts without numpy.
"""

from __future__ import annotations

__all__ = ["Sim7600Emulator"]


def __getattr__(name: str):
    if name == "Sim7600Emulator":
        from hil.sim7600 import Sim7600Emulator

        return Sim7600Emulator
    raise AttributeError(f"module 'hil' has no attribute {name!r}")
