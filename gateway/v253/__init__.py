"""V.253 analog voice modems (USRobotics 5637, Conexant CX930xx): the in-band protocol, pure.

dle       DLE shielding both ways, event codes (DTMF, busy, dial tone, silence, ...)
samples   AT+VSM compression ids to and from int16 8 kHz samples
stream    a voice stream as 320-byte frames plus events (RxStream / TxStream)
callerid  formatted caller ID between rings, ring counting
"""

from gateway.v253.callerid import CallerId, CallerIdParser, RingCounter
from gateway.v253.dle import (
    HANGUP_HINTS,
    Decoded,
    DigitDebouncer,
    DleDecoder,
    DleEncoder,
    DleEvent,
    EventKind,
    escape,
)
from gateway.v253.samples import (
    FORMATS,
    SampleDecoder,
    SampleFormat,
    VsmOption,
    choose_format,
    parse_vsm_options,
    sample_format,
)
from gateway.v253.stream import RxChunk, RxStream, TxStream

__all__ = [
    "HANGUP_HINTS", "Decoded", "DigitDebouncer", "DleDecoder", "DleEncoder", "DleEvent",
    "EventKind", "escape", "CallerId", "CallerIdParser", "RingCounter", "FORMATS",
    "SampleDecoder", "SampleFormat", "VsmOption", "choose_format", "parse_vsm_options",
    "sample_format", "RxChunk", "RxStream", "TxStream",
]
