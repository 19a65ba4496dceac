"""AT+VSM formats against the frame model (bit-exact against gateway.media.g711), VSM lists, and
a voice stream as frames."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media import g711
from gateway.media.frames import FRAME_BYTES, FRAME_SAMPLES
from gateway.media.tones import dominant_frequency, sine
from gateway.v253 import (
    DleEncoder,
    EventKind,
    RxStream,
    SampleDecoder,
    TxStream,
    choose_format,
    parse_vsm_options,
    sample_format,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))

# AT+VSM=? as the vendor manuals print it (shared/docs/modems.md §5.5).
USR_VSM = ['1,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)', '128,"8-BIT LINEAR",8,0,(7200,8000),(0),(0)',
           '129,"ADPCM",4,0,(7200,8000),(0),(0)', '130,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)',
           '131,"ULAW",8,0,(7200,8000),(0),(0)', '132,"ALAW",8,0,(7200,8000),(0),(0)',
           '133,"LINEAR",16,0,(7200,8000),(0),(0)', "OK"]
CONEXANT_VSM = ['1,"UNSIGNED PCM",8,0,8000,0,0', '129,"IMA ADPCM",4,0,8000,0,0',
                '130,"UNSIGNED PCM",8,0,8000,0,0', '140,"2 Bit ADPCM",2,0,8000,0,0',
                '141,"4 Bit ADPCM",4,0,8000,0,0']


@pytest.mark.parametrize("vsm_id", [1, 128, 130])
def test_unsigned_8bit_is_the_top_byte_offset_by_128(vsm_id):
    fmt = sample_format(vsm_id)
    decoded = fmt.decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tolist() == [(c - 128) * 256 for c in range(256)]
    assert fmt.encode(decoded) == ALL_CODES
    expected = ((ALL_INT16.astype(np.int32) + 32768) >> 8).astype(np.uint8).tobytes()
    assert fmt.encode(ALL_INT16) == expected
    assert fmt.silence == b"\x80"


def test_signed_8bit_v253_id_0():
    fmt = sample_format(0)
    assert fmt.decode(b"\x00\x7f\x80\xff").tolist() == [0, 127 * 256, -128 * 256, -256]
    assert fmt.encode(fmt.decode(ALL_CODES)) == ALL_CODES


@pytest.mark.parametrize("vsm_id, encode, decode", [
    (4, g711.ulaw_encode, g711.ulaw_decode), (131, g711.ulaw_encode, g711.ulaw_decode),
    (5, g711.alaw_encode, g711.alaw_decode), (132, g711.alaw_encode, g711.alaw_decode)])
def test_g711_ids_are_bit_exact_with_the_media_tables(vsm_id, encode, decode):
    fmt = sample_format(vsm_id)
    assert fmt.encode(ALL_INT16) == encode(ALL_INT16)
    assert np.array_equal(fmt.decode(ALL_CODES), decode(ALL_CODES))
    assert fmt.decode(fmt.silence).tolist() in ([0], [8])


def test_16bit_linear_is_little_endian():
    fmt = sample_format(133)
    assert fmt.decode(b"\x01\x02\xff\xff").tolist() == [0x0201, -1]
    assert fmt.encode(ALL_INT16) == ALL_INT16.astype("<i2").tobytes()
    with pytest.raises(ValueError, match="whole number of 2-byte samples"):
        fmt.decode(b"\x01\x02\x03")


def test_unsupported_ids_and_rates_are_named():
    with pytest.raises(ValueError, match=r"129 \(ADPCM\)"):
        sample_format(129)
    with pytest.raises(ValueError, match=r"99 \(unknown\)"):
        sample_format(99)
    with pytest.raises(ValueError, match="rate 7200"):
        sample_format(128, 7200)


def test_sample_decoder_keeps_a_split_16bit_sample():
    decoder = SampleDecoder(sample_format(133))
    assert decoder.feed(b"\x01\x02\x03").tolist() == [0x0201]
    assert decoder.feed(b"\x04").tolist() == [0x0403]
    assert decoder.feed(b"").tolist() == []


def test_vsm_lists_of_both_vendors_parse():
    usr = parse_vsm_options(USR_VSM)
    assert [o.vsm_id for o in usr] == [1, 128, 129, 130, 131, 132, 133]
    assert usr[1].name == "8-BIT LINEAR" and usr[1].bits == 8 and usr[1].rates == (7200, 8000)
    assert usr[6].bits == 16
    cx = parse_vsm_options(CONEXANT_VSM)
    assert [o.vsm_id for o in cx] == [1, 129, 130, 140, 141]
    assert cx[0].rates == (8000,)
    assert parse_vsm_options(['+VSM: 4,"G.711U",8,0,(8000),(0),(0)'])[0].vsm_id == 4


def test_choose_format_prefers_proven_8bit_linear_and_honours_a_preference():
    assert choose_format(parse_vsm_options(USR_VSM)).vsm_id == 128
    assert choose_format(parse_vsm_options(CONEXANT_VSM)).vsm_id == 1
    assert choose_format(parse_vsm_options(USR_VSM), preference=(131, 128)).vsm_id == 131
    adpcm_only = parse_vsm_options(['129,"IMA ADPCM",4,0,8000,0,0'])
    with pytest.raises(ValueError, match="129 'IMA ADPCM'"):
        choose_format(adpcm_only)


def test_rx_stream_cuts_frames_whatever_the_chunking():
    fmt = sample_format(128)
    tone = sine(1234, 0.1, amplitude=0.99)               # 800 samples = 5 frames
    assert fmt.encode(tone).count(b"\x10") >= 3         # the stream has bytes to shield
    wire = DleEncoder().escape(fmt.encode(tone))
    wire = wire[:300] + b"\x10b" + wire[300:] + b"\x10\x03\r\nOK\r\n"
    stream = RxStream(fmt)
    frames, events, rest = [], [], None
    for i in range(0, len(wire), 37):
        piece = wire[i:i + 37]
        chunk = stream.feed(piece)
        frames += chunk.frames
        events += chunk.events
        if chunk.rest is not None:
            assert piece[chunk.end:] == chunk.rest
            rest = (rest or b"") + chunk.rest
    assert len(frames) == 5 and all(len(f) == FRAME_BYTES for f in frames)
    got = np.frombuffer(b"".join(frames), "<i2")
    assert np.array_equal(got, fmt.decode(fmt.encode(tone)))
    assert [e.kind for e in events] == [EventKind.BUSY]
    assert rest == b"\r\nOK\r\n" and stream.ended
    assert stream.flush() is None


def test_rx_stream_flush_pads_the_last_partial_frame():
    stream = RxStream(sample_format(1))
    assert stream.feed(b"\xc0" * 200).frames != []
    last = stream.flush()
    samples = np.frombuffer(last, "<i2")
    assert samples[:40].tolist() == [0x40 * 256] * 40 and not samples[40:].any()


def test_tx_stream_shields_dle_bytes_and_decodes_back():
    fmt = sample_format(128)
    samples = np.full(FRAME_SAMPLES, (0x10 - 128) * 256, np.int16)   # every byte is 0x10
    wire = TxStream(fmt).encode_frame(samples.astype("<i2").tobytes())
    assert wire == b"\x10\x10" * FRAME_SAMPLES
    chunk = RxStream(fmt).feed(wire)
    assert chunk.frames == [samples.astype("<i2").tobytes()]
    assert TxStream(sample_format(131)).silence(3) == b"\xff\xff\xff"


def test_a_tone_survives_mu_law_both_ways():
    fmt = sample_format(131)
    tone = sine(440, 0.2)
    frames = RxStream(fmt).feed(TxStream(fmt).encode_samples(tone)).frames
    got = np.frombuffer(b"".join(frames), "<i2")
    assert abs(dominant_frequency(got) - 440) < 2
