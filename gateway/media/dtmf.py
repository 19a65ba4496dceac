"""In-band DTMF: a generator for outbound digits and a streaming detector meeting the usual
exchange acceptance limits (ITU-T Q.24 / Bellcore), in vectorised numpy.

Detector design: the signal is cut into 5 ms sub-blocks; each sub-block is correlated with the 8
DTMF frequencies and their second harmonics against an absolute time reference, so 20 ms windows
(hop 5 ms) are sums of 4 sub-blocks and the phase advance between sub-blocks gives each tone's
frequency offset. A window holds a digit when one row and one column tone are strong enough, within
the frequency tolerance and twist limits, carry nearly all the window's energy and have weak second
harmonics. A digit needs MIN_RUN consecutive such windows; it ends at another digit or after
MAX_GAP + 1 windows without a digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.media.frames import SAMPLE_RATE, as_int16

ROW_FREQS = (697, 770, 852, 941)
COL_FREQS = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")
DIGITS = "".join(sorted("".join(KEYPAD)))

SUB_MS = 5  # sub-block length
WINDOW_SUBS = 4  # 20 ms analysis window
MIN_LEVEL_DBFS = -36.0  # per tone, RMS relative to int16 full scale
MAX_FREQ_DEVIATION = 0.025  # accept 1.5 %, reject 3.5 %
MAX_REVERSE_TWIST_DB = 5.0  # column (high) tone louder than row tone: accept 4, reject 6
MAX_NORMAL_TWIST_DB = 9.0  # row (low) tone louder than column tone: accept 8, reject 10
MIN_TONE_FRACTION = 0.85  # share of the window's energy in the two tones (talk-off, duration)
MAX_HARMONIC_RATIO = 0.25 # second-harmonic power over fundamental power
MIN_RUN = 3  # consecutive valid windows: ~30 ms of tone (40 ms accepted, 23 ms rejected)
MAX_GAP = 8  # silent windows bridged inside a digit: a 10 ms break is one digit, a 40 ms pause two

_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class DigitEvent:
    """One detected digit; start and end in seconds from the first sample fed."""

    digit: str
    start: float
    end: float

    def as_dict(self) -> dict:
        return {"digit": self.digit, "start": round(self.start, 3), "end": round(self.end, 3)}


def _digit_freqs(digit: str) -> tuple[int, int]:
    d = str(digit).upper()
    for r, row in enumerate(KEYPAD):
        c = row.find(d)
        if len(d) == 1 and c >= 0:
            return ROW_FREQS[r], COL_FREQS[c]
    raise ValueError(f"not a DTMF digit: {digit!r} (expected one of {DIGITS})")


def dtmf_tone(digit: str, ms: float = 100, amplitude_dbfs: float = -10, rate: int = SAMPLE_RATE, *,
              twist_db: float = 0.0, row_deviation: float = 0.0, col_deviation: float = 0.0) -> np.ndarray:
    """One digit as int16: the row tone at `amplitude_dbfs` (RMS, dBFS), the column tone
    `twist_db` louder (negative = normal twist, positive = reverse twist). The deviations shift
    each tone's frequency by a fraction (0.015 = +1.5 %) for testing receivers."""
    row, col = _digit_freqs(digit)
    n = max(0, round(ms * rate / 1000))
    t = np.arange(n, dtype=np.float64) / rate
    a_row = math.sqrt(2.0) * _FULL_SCALE * 10.0 ** (amplitude_dbfs / 20.0)
    a_col = a_row * 10.0 ** (twist_db / 20.0)
    wave = a_row * np.sin(2 * np.pi * row * (1 + row_deviation) * t)
    wave += a_col * np.sin(2 * np.pi * col * (1 + col_deviation) * t)
    return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)


def dtmf_sequence(digits: str, on_ms: float = 100, off_ms: float = 60, amplitude_dbfs: float = -10,
                  rate: int = SAMPLE_RATE) -> np.ndarray:
    """Digits separated by off_ms of silence (none before the first or after the last), as int16."""
    gap = np.zeros(max(0, round(off_ms * rate / 1000)), dtype=np.int16)
    parts: list[np.ndarray] = []
    for i, d in enumerate(digits):
        if i:
            parts.append(gap)
        parts.append(dtmf_tone(d, on_ms, amplitude_dbfs, rate))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class DtmfDetector:
    """Streaming detector: feed() int16 audio of any length, get the digits that have ended;
    flush() at end of stream returns a digit still sounding."""

    def __init__(self, rate: int = SAMPLE_RATE):
        if rate <= 0 or rate * SUB_MS % 1000:
            raise ValueError(f"rate {rate} Hz does not give whole {SUB_MS} ms sub-blocks")
        self.rate = int(rate)
        self._sub = self.rate * SUB_MS // 1000
        self._win = self._sub * WINDOW_SUBS
        self._freqs = np.array(ROW_FREQS + COL_FREQS + tuple(2 * f for f in ROW_FREQS + COL_FREQS), dtype=np.int64)
        n = np.arange(self._sub)
        self._basis = np.exp(-2j * np.pi * np.outer(n, self._freqs) / self.rate)  # (sub, 16)
        self._min_power = (_FULL_SCALE * 10.0 ** (MIN_LEVEL_DBFS / 20.0)) ** 2
        self._tail = np.zeros(0, dtype=np.float64)
        self._hist_y = np.zeros((0, self._freqs.size), dtype=np.complex128)
        self._hist_e = np.zeros(0, dtype=np.float64)
        self._next_sample = 0  # absolute index of the first sample not yet in a sub-block
        self._next_window = 0  # absolute index of the next window to classify
        self._cur = -1  # digit index being tracked, -1 none
        self._start = self._last = self._run = self._best = self._misses = 0

    def feed(self, samples: np.ndarray) -> list[DigitEvent]:
        x = as_int16(samples).astype(np.float64)
        buf = np.concatenate([self._tail, x]) if self._tail.size else x
        n_sub = buf.size // self._sub
        self._tail = buf[n_sub * self._sub :].copy()
        if n_sub == 0:
            return []
        blocks = buf[: n_sub * self._sub].reshape(n_sub, self._sub)
        starts = self._next_sample + self._sub * np.arange(n_sub, dtype=np.int64)
        self._next_sample += n_sub * self._sub
        phase = (starts[:, None] * self._freqs[None, :]) % self.rate  # exact integer phase reference
        y = (blocks @ self._basis) * np.exp(-2j * np.pi * phase / self.rate)
        e = np.einsum("ij,ij->i", blocks, blocks)
        ys = np.concatenate([self._hist_y, y])
        es = np.concatenate([self._hist_e, e])
        keep = WINDOW_SUBS - 1
        self._hist_y, self._hist_e = ys[-keep:], es[-keep:]
        if ys.shape[0] < WINDOW_SUBS:
            return []
        return self._track(self._classify(ys, es))

    def flush(self) -> list[DigitEvent]:
        events: list[DigitEvent] = []
        self._close(events)
        return events

    # --- per-window decision ------------------------------------------------------------------

    def _classify(self, ys: np.ndarray, es: np.ndarray) -> np.ndarray:
        """Digit index (into DIGITS order of KEYPAD rows*4+col) per window, -1 where none."""
        nw = ys.shape[0] - WINDOW_SUBS + 1
        csum = np.concatenate([np.zeros((1, ys.shape[1]), complex), np.cumsum(ys, axis=0)])
        w = csum[WINDOW_SUBS:] - csum[:nw]  # (nw, 16) window DFT values
        ecs = np.concatenate([[0.0], np.cumsum(es)])
        energy = ecs[WINDOW_SUBS:] - ecs[:nw]
        mag2 = np.abs(w) ** 2
        rows = np.argmax(mag2[:, :4], axis=1)
        cols = np.argmax(mag2[:, 4:8], axis=1) + 4
        idx = np.arange(nw)
        # frequency offset from the phase advance between consecutive sub-blocks
        adv = sum(ys[i + 1 : i + 1 + nw] * np.conj(ys[i : i + nw]) for i in range(WINDOW_SUBS - 1))
        df_row = np.angle(adv[idx, rows]) * self.rate / (2 * np.pi * self._sub)
        df_col = np.angle(adv[idx, cols]) * self.rate / (2 * np.pi * self._sub)
        f_row, f_col = self._freqs[rows], self._freqs[cols]
        dev_ok = (np.abs(df_row) <= MAX_FREQ_DEVIATION * f_row) & (np.abs(df_col) <= MAX_FREQ_DEVIATION * f_col)
        # power (mean square) of each tone, corrected for the offset's loss in the window DFT
        n = self._win
        loss_row = np.sinc(np.clip(df_row, -MAX_FREQ_DEVIATION * f_row, MAX_FREQ_DEVIATION * f_row) * n / self.rate) ** 2
        loss_col = np.sinc(np.clip(df_col, -MAX_FREQ_DEVIATION * f_col, MAX_FREQ_DEVIATION * f_col) * n / self.rate) ** 2
        p_row = 2.0 * mag2[idx, rows] / (n * n) / loss_row
        p_col = 2.0 * mag2[idx, cols] / (n * n) / loss_col
        mean_power = energy / n
        level_ok = (p_row >= self._min_power) & (p_col >= self._min_power)
        with np.errstate(divide="ignore", invalid="ignore"):
            twist = 10.0 * np.log10(p_col / p_row)
            fraction = (p_row + p_col) / mean_power
            h_row = 2.0 * mag2[idx, rows + 8] / (n * n) / p_row
            h_col = 2.0 * mag2[idx, cols + 8] / (n * n) / p_col
        twist_ok = (twist <= MAX_REVERSE_TWIST_DB) & (twist >= -MAX_NORMAL_TWIST_DB)
        ok = level_ok & dev_ok & twist_ok & (fraction >= MIN_TONE_FRACTION)
        ok &= (h_row <= MAX_HARMONIC_RATIO) & (h_col <= MAX_HARMONIC_RATIO)
        return np.where(ok, rows * 4 + (cols - 4), -1)

    # --- digit tracking over windows ----------------------------------------------------------

    def _track(self, digits: np.ndarray) -> list[DigitEvent]:
        events: list[DigitEvent] = []
        base = self._next_window
        self._next_window += digits.size
        if self._cur < 0 and not np.any(digits >= 0):
            return events
        for j, v in enumerate(digits.tolist(), start=base):
            if self._cur >= 0:
                if v == self._cur:
                    self._last, self._misses = j, 0
                    self._run += 1
                    self._best = max(self._best, self._run)
                    continue
                self._run = 0
                if v < 0:
                    self._misses += 1
                    if self._misses <= MAX_GAP:
                        continue
                self._close(events)
            if v >= 0:
                self._cur, self._start, self._last = v, j, j
                self._run = self._best = 1
                self._misses = 0
        return events

    def _close(self, events: list[DigitEvent]) -> None:
        if self._cur >= 0 and self._best >= MIN_RUN:
            digit = KEYPAD[self._cur // 4][self._cur % 4]
            start = self._start * self._sub / self.rate
            end = (self._last * self._sub + self._win) / self.rate
            events.append(DigitEvent(digit, start, end))
        self._cur = -1
        self._run = self._best = self._misses = 0


def detect(samples: np.ndarray, rate: int = SAMPLE_RATE) -> list[DigitEvent]:
    """All digits in a whole signal."""
    det = DtmfDetector(rate)
    return det.feed(samples) + det.flush()


def detect_file(path: str | Path) -> list[DigitEvent]:
    """All digits in a WAV file of any supported format and rate (read as 8 kHz mono);
    raises gateway.media.wavfile.WavError naming the file when it cannot be read."""
    from gateway.media.wavfile import read_wav

    return detect(read_wav(path), SAMPLE_RATE)
