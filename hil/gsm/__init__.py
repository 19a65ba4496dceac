"""Faithful emulators of GSM/LTE voice modems on pseudo-terminals, one class per family.

`create(family, **options)` builds one; `FAMILIES` maps the family ids (the same ids as the
profiles in firmware_config/) to their classes. Every emulator has the scripting API of
GsmEmulator (hil/gsm/core.py), the faults of hil/gsm/faults.py and the SMS side of hil/gsm/sms.py.
The classes load lazily, so `FAMILY_IDS` is available without numpy (for the control client).
"""

from __future__ import annotations

FAMILY_IDS = ("simcom_sim7600", "quectel_ec25", "huawei_e1752", "huawei_e3531", "simcom_sim800")

__all__ = ["FAMILIES", "FAMILY_IDS", "GsmEmulator", "create"]


def _families() -> dict:
    from hil.gsm.huawei import HuaweiE1752, HuaweiE3531
    from hil.gsm.quectel import QuectelEc25
    from hil.gsm.simcom import SimcomSim800, SimcomSim7600

    classes = (SimcomSim7600, QuectelEc25, HuaweiE1752, HuaweiE3531, SimcomSim800)
    return {cls.FAMILY: cls for cls in classes}


def create(family: str, **options):
    """An emulator of `family` (not started); unknown ids raise ValueError listing the known ones."""
    if family not in FAMILY_IDS:
        raise ValueError(f"unknown modem family {family!r} (known: {', '.join(FAMILY_IDS)})")
    return _families()[family](**options)


def __getattr__(name: str):
    if name == "FAMILIES":
        return _families()
    if name == "GsmEmulator":
        from hil.gsm.core import GsmEmulator

        return GsmEmulator
    raise AttributeError(f"module 'hil.gsm' has no attribute {name!r}")
