"""The AT error tree: every failure of a command is an AtError carrying what the modem said."""

from __future__ import annotations


class AtError(Exception):
    """Root of everything the AT layer raises."""


class AtCommandError(AtError):
    """The modem ended a command with a failure result (ERROR, +CME/+CMS ERROR, BUSY, ...)."""

    def __init__(self, command: str, final: str, lines: list[str] | None = None) -> None:
        self.command = command
        self.final = final
        self.lines = list(lines or [])
        super().__init__(f"{command}: {final}")


class CmeError(AtCommandError):
    """+CME ERROR: <code> (equipment errors, 27.007 §9.2); code is an int, or text with AT+CMEE=2."""

    def __init__(self, command: str, final: str, lines: list[str] | None = None) -> None:
        super().__init__(command, final, lines)
        self.code = error_code(final)


class CmsError(AtCommandError):
    """+CMS ERROR: <code> (message service errors, 27.005 §3.2.5)."""

    def __init__(self, command: str, final: str, lines: list[str] | None = None) -> None:
        super().__init__(command, final, lines)
        self.code = error_code(final)


class AtTimeout(AtError, TimeoutError):
    """No final result code within the command's timeout; `partial` holds the lines that came.

    resync_failed: the command was never written, because the port did not get back in step
    after an earlier timeout (the modem does not answer a probe; see AtSession.resync).
    """

    def __init__(self, command: str, partial: list[str], timeout: float, *,
                 resync_failed: bool = False) -> None:
        self.command = command
        self.partial = list(partial)
        self.timeout = timeout
        self.resync_failed = resync_failed
        if resync_failed:
            text = f"{command}: not sent, the modem did not answer a resync probe within {timeout:g} s"
        else:
            got = f"; got {self.partial!r}" if self.partial else ""
            text = f"{command}: no final result code within {timeout:g} s{got}"
        super().__init__(text)


class AtDataModeError(AtError):
    """The session is (or is not) in data mode, and the call needs the other mode."""


class AtLinkClosed(AtError):
    """The port is gone (or the session was closed); no command can run on it any more."""


def error_code(final: str) -> int | str:
    """The <code> of '+CME ERROR: 10' (10) or '+CME ERROR: SIM not inserted' (the text)."""
    _, _, code = final.partition(":")
    code = code.strip()
    return int(code) if code.isascii() and code.isdigit() else code
