"""LineFramer: the same lines whatever the chunking, garbage dropped, memory bounded."""

import random

import pytest

from gateway.at.framer import MAX_LINE_BYTES, PROMPT, LineFramer

# Byte streams as modems send them, with the lines a reader must get out of them.
STREAMS = {
    "crlf responses": (
        b"\r\nManufacturer: SIMCOM INCORPORATED\r\nModel: SIMCOM_SIM7600G-H\r\n\r\nOK\r\n",
        ["Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H", "OK"],
    ),
    "cr cr lf urcs": (
        b"\r\r\n+RXDTMF: 8\r\r\n\r\r\n+CRING: VOICE\r\r\n",
        ["+RXDTMF: 8", "+CRING: VOICE"],
    ),
    "echo then lf-only and cr-only breaks": (
        b"AT+CSQ\r\r\n+CSQ: 20,99\n\nOK\r",
        ["AT+CSQ", "+CSQ: 20,99", "OK"],
    ),
    "garbage around and inside lines": (
        b"\xff\x00\xfe\r\n\x00+CLIP: \"0802\",129\xff\r\n\x13\x11\r\n\xffOK\x00\r\n",
        ['+CLIP: "0802",129', "OK"],
    ),
    "utf-8 text kept": (
        "\r\n+COPS: 0,0,\"Télé 2\",7\r\n".encode(),
        ['+COPS: 0,0,"Télé 2",7'],
    ),
}


def feed_chunks(chunks):
    framer = LineFramer()
    lines = []
    for chunk in chunks:
        lines += framer.feed(chunk)
    return lines, framer


@pytest.mark.parametrize("name", STREAMS)
def test_whole(name):
    data, expected = STREAMS[name]
    assert feed_chunks([data])[0] == expected


@pytest.mark.parametrize("name", STREAMS)
def test_split_at_every_index(name):
    data, expected = STREAMS[name]
    for i in range(len(data) + 1):
        assert feed_chunks([data[:i], data[i:]])[0] == expected, f"split at {i}"


@pytest.mark.parametrize("name", STREAMS)
def test_byte_at_a_time(name):
    data, expected = STREAMS[name]
    lines, framer = feed_chunks([data[i:i + 1] for i in range(len(data))])
    assert lines == expected
    assert framer.buffered == 0


def test_partial_line_waits_for_its_break():
    framer = LineFramer()
    assert framer.feed(b"\r\nO") == []
    assert framer.feed(b"K") == []
    assert framer.buffered == 1 + 1
    assert framer.feed(b"\r") == ["OK"]
    assert framer.feed(b"\n") == []


def test_only_breaks_and_garbage_give_no_lines():
    assert feed_chunks([b"\r\n\r\r\n\n\r", b"\x00\xff\x7f\r\n", b" \t \r\n"])[0] == []


def test_tab_becomes_space_and_edges_are_trimmed():
    assert feed_chunks([b"  +CSQ:\t20,99 \r\n"])[0] == ["+CSQ: 20,99"]


def test_seeded_noise_never_hides_a_response():
    # Noise made only of bytes that cannot form printable text: controls and invalid UTF-8.
    rng = random.Random(7)
    noise_bytes = [b for b in [*range(0, 32), 0x7F, *range(0x80, 0xC0), *range(0xF8, 0x100)]
                   if b not in (0x0D, 0x0A)]
    for _ in range(50):
        noise = lambda: bytes(rng.choice(noise_bytes) for _ in range(rng.randint(0, 12)))  # noqa: E731
        data = (noise() + b"\r\n" + noise() + b"+CSQ: 20,99" + noise() + b"\r\n"
                + noise() + b"\r\n" + noise() + b"OK" + noise() + b"\r\n")
        cut = rng.randint(0, len(data))
        assert feed_chunks([data[:cut], data[cut:]])[0] == ["+CSQ: 20,99", "OK"], data


def test_overlong_line_is_cut_reported_and_followed_by_normal_lines():
    reported = []
    framer = LineFramer(on_overflow=reported.append)
    data = b"A" * (MAX_LINE_BYTES + 1000) + b"\r\nOK\r\n"
    assert framer.feed(data) == ["A" * MAX_LINE_BYTES, "OK"]
    assert reported == [MAX_LINE_BYTES]
    assert framer.overflows == 1


def test_overlong_line_same_result_whatever_the_chunking():
    data = b"\r\n+X: " + b"7" * (MAX_LINE_BYTES * 2) + b"\r\nOK\r\n"
    whole, whole_framer = feed_chunks([data])
    for chunks in ([data[i:i + 1] for i in range(len(data))],
                   [data[:MAX_LINE_BYTES], data[MAX_LINE_BYTES:]],
                   [data[:MAX_LINE_BYTES + 6], data[MAX_LINE_BYTES + 6:]],
                   [data[:MAX_LINE_BYTES + 7], data[MAX_LINE_BYTES + 7:]]):
        lines, framer = feed_chunks(chunks)
        assert lines == whole
        assert framer.overflows == whole_framer.overflows == 1
    assert whole == ["+X: " + "7" * (MAX_LINE_BYTES - 4), "OK"]


def test_line_of_exactly_the_limit_is_kept_whole():
    data = b"B" * MAX_LINE_BYTES
    lines, framer = feed_chunks([data[:100], data[100:], b"\r\n"])
    assert lines == ["B" * MAX_LINE_BYTES]
    assert framer.overflows == 0


def test_endless_stream_without_breaks_never_grows_memory():
    framer = LineFramer()
    held = []
    for _ in range(500):
        framer.feed(b"\x55" * 1000)        # 500 kB of what looks like audio on the wrong port
        held.append(framer.buffered)
    assert max(held) <= MAX_LINE_BYTES
    assert framer.overflows == 1           # one runaway line, reported once
    assert framer.feed(b"\r\nOK\r\n") == ["OK"]


def test_reset_forgets_a_partial_line():
    framer = LineFramer()
    framer.feed(b"+CLCC: 1,0,")
    framer.reset()
    assert framer.feed(b"OK\r\n") == ["OK"]


# -- where lines end, and the "> " prompt ----------------------------------------------------------

def test_line_ends_point_just_past_each_break():
    data = b"\r\nCONNECT\r\n\x80\r\n\r\nOK\rX"
    got = list(LineFramer().lines_with_ends(data))
    assert got == [("CONNECT", 11), ("OK", 19)]
    assert data[11:12] == b"\x80"


def test_stopping_after_a_line_leaves_the_rest_unconsumed():
    framer = LineFramer()
    data = b"+CLIP: 1\r\nCONNECT\r\n\r\nOK\r\n"
    lines = framer.lines_with_ends(data)
    assert next(lines) == ("+CLIP: 1", 10)
    line, end = next(lines)
    assert line == "CONNECT" and data[end:] == b"\r\nOK\r\n"
    lines.close()
    assert framer.buffered == 0
    assert framer.feed(b"ATZ\r") == ["ATZ"]


def test_lone_cr_and_lone_lf_breaks_end_after_one_byte():
    assert list(LineFramer().lines_with_ends(b"A\rB\nC\n\rD")) == [("A", 2), ("B", 4), ("C", 6)]


def test_prompt_only_when_asked_and_only_as_an_unfinished_line():
    framer = LineFramer()
    assert framer.feed(b"\r\n> ") == []
    framer.reset()
    framer.prompt = True
    assert framer.feed(b"AT+CMGS=5\r\r\n> ") == ["AT+CMGS=5", PROMPT]
    assert framer.buffered == 0
    assert framer.feed(b"\r\n>") == [PROMPT]                   # the space may come later
    assert framer.feed(b" \r\n+CMGS: 4\r\n") == ["+CMGS: 4"]
    assert framer.feed(b"\r\n> text\r\n") == ["> text"]       # a line that starts with "> "
    assert framer.feed(b"\x00>\x00 ") == [PROMPT]              # noise around it


def test_line_ends_agree_with_feed_for_any_chunking():
    data = b"\r\nA\r\r\nBB\n" + b"C" * (MAX_LINE_BYTES + 5) + b"\r\nOK\r\n"
    whole = LineFramer().feed(data)
    for cut in range(0, len(data), 97):
        framer = LineFramer()
        got = [line for chunk in (data[:cut], data[cut:])
               for line, _ in framer.lines_with_ends(chunk)]
        assert got == whole
