"""V.250 command-line pieces both emulators' interpreters share (hil/gsm/ and hil/v253.py): cleaning a
received line, walking the commands of a line, and framing result codes verbose or numeric (ATV0)."""

from __future__ import annotations

from typing import Callable, Iterator, TypeVar

# V.250 numeric result codes for ATV0.
NUMERIC_RESULTS = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4",
                   "NO DIALTONE": "6", "BUSY": "7", "NO ANSWER": "8"}

R = TypeVar("R")


def clean_line(raw: bytes, backspace: str = "\x08") -> str:
    """The text of a received command line: backspace (S5) removes the character before it, other
    control characters are dropped, surrounding blanks stripped."""
    chars: list[str] = []
    for ch in raw.decode("latin-1"):
        if ch == backspace:
            if chars:
                chars.pop()
        elif ch >= " ":
            chars.append(ch)
    return "".join(chars).strip()


def next_semicolon(body: str, pos: int) -> int:
    """Where the extended command starting at `pos` ends: the next ';' or the end of the line."""
    end = body.find(";", pos)
    return len(body) if end < 0 else end


def command_parts(body: str, extended_prefixes: str, extended: Callable[[str], R], dial: Callable[[str], R],
                  basic: Callable[[str, int], tuple[R, int]],
                  extended_end: Callable[[str, int], int] = next_semicolon) -> Iterator[R]:
    """Run the commands of a command line (the text after "AT") one at a time, yielding each result:
    basic commands back to back (basic(body, pos) returns its result and where the next begins),
    extended ones (starting with one of `extended_prefixes`, text up to extended_end) one by one,
    D with the rest of the line. A caller that stops iterating leaves the rest of the line unrun."""
    pos = 0
    while pos < len(body):
        ch = body[pos].upper()
        if ch in " ;":
            pos += 1
            continue
        if ch in extended_prefixes:
            end = extended_end(body, pos)
            part = extended(body[pos:end])
            pos = end
        elif ch == "D":
            part = dial(body[pos + 1:])
            pos = len(body)
        else:
            part, pos = basic(body, pos)
        yield part


def frame_code(text: str, verbose: bool, crlf: str = "\r\n") -> str:
    """A result code or unsolicited line as sent: <CR><LF>text<CR><LF> when verbose (ATV1), else the
    number and <CR> (text<CR><LF> for texts without a number); crlf is S3 and S4."""
    if verbose:
        return f"{crlf}{text}{crlf}"
    code = NUMERIC_RESULTS.get(text)
    return f"{code}{crlf[0]}" if code is not None else f"{text}{crlf}"
