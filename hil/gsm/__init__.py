"""Faithful emulators of GSM/LTE voice modems on pseudo-terminals, one class per family.

`create(family, **options)` builds one; `FAMILIES` maps the family ids (the same ids as the
profiles in firmware_config/) to their classes. Every emulator has the scripting API of
GsmEmulator (hil/gsm/core.py), the faults of hil/gsm/faults.py and the SMS side of hil/gsm/sms.py.
"""

from __future__ import annotations

from hil.gsm.audio import AudioSide, PtyAudioSide
from hil.gsm.core import OUTCOMES, GsmEmulator
from hil.gsm.huawei import HuaweiE1752, HuaweiE3531
from hil.gsm.quectel import QuectelEc25
from hil.gsm.simcom import SimcomSim800, SimcomSim7600

FAMILIES: dict[str, type[GsmEmulator]] = {
    cls.FAMILY: cls for cls in (SimcomSim7600, QuectelEc25, HuaweiE1752, HuaweiE3531, SimcomSim800)
}

__all__ = ["FAMILIES", "OUTCOMES", "AudioSide", "GsmEmulator", "PtyAudioSide", "create"]


def create(family: str, **options) -> GsmEmulator:
    """An emulator of `family` (not started); unknown ids raise ValueError listing the known ones."""
    cls = FAMILIES.get(family)
    if cls is None:
        raise ValueError(f"unknown modem family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    return cls(**options)
