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
BATCH_MS = 100  # audio gathered before analysis: numpy pays per call, not per sample
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

    def __init__(self, rate: int = SAMPLE_RATE, batch_ms: int = BATCH_MS):
        if rate <= 0 or rate * SUB_MS % 1000:
            raise ValueError(f"rate {rate} Hz does not give whole {SUB_MS} ms sub-blocks")
        self.rate = int(rate)
        self._sub = self.rate * SUB_MS // 1000
        self._win = self._sub * WINDOW_SUBS
        self._batch = max(self._sub, self.rate * batch_ms // 1000)
        freqs = np.array(ROW_FREQS + COL_FREQS + tuple(2 * f for f in ROW_FREQS + COL_FREQS), dtype=np.int64)
        self._freqs = freqs
        angle = 2 * np.pi * np.outer(np.arange(self._sub), freqs) / self.rate
        self._basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)  # (sub, 32) real
        period = self.rate // math.gcd(self.rate, self._sub)  # sub-blocks until every phase repeats
        steps = (np.arange(period, dtype=np.int64)[:, None] * self._sub * freqs[None, :]) % self.rate
        self._rot = np.exp(-2j * np.pi * steps / self.rate)  # sub-block k starts at phase rot[k % period]
        fund = freqs[:8].astype(np.float64)
        self._max_df = MAX_FREQ_DEVIATION * fund
        self._worst_loss = np.sinc(self._max_df * self._win / self.rate) ** 2
        self._min_power = (_FULL_SCALE * 10.0 ** (MIN_LEVEL_DBFS / 20.0)) ** 2
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self._tail = np.zeros(0, dtype=np.float64)
        self._hist_y = np.zeros((0, freqs.size), dtype=np.complex128)
        self._hist_e = np.zeros(0, dtype=np.float64)
        self._next_sub = 0  # absolute index of the next sub-block
        self._next_window = 0  # absolute index of the next window to classify
        self._cur = -1  # digit index being tracked, -1 none
        self._start = self._last = self._run = self._best = self._misses = 0

    def feed(self, samples: np.ndarray) -> list[DigitEvent]:
        """Add audio; returns digits that ended. Audio is analysed in batches of batch_ms, so a
        digit is reported at most that much later than it could be."""
        x = as_int16(samples)
        self._pending.append(x)
        self._pending_size += x.size
        if self._pending_size < self._batch:
            return []
        return self._process()

    def flush(self) -> list[DigitEvent]:
        """Analyse what is buffered and end the stream's current digit."""
        events = self._process() if self._pending_size else []
        self._close(events)
        return events

    def _process(self) -> list[DigitEvent]:
        parts = [self._tail, *self._pending] if self._tail.size else self._pending
        buf = np.concatenate(parts).astype(np.float64) if len(parts) > 1 else parts[0].astype(np.float64)
        self._pending, self._pending_size = [], 0
        n_sub = buf.size // self._sub
        self._tail = buf[n_sub * self._sub :]
        if n_sub == 0:
            return []
        blocks = buf[: n_sub * self._sub].reshape(n_sub, self._sub)
        k = (self._next_sub + np.arange(n_sub)) % self._rot.shape[0]
        self._next_sub += n_sub
        r = blocks @ self._basis
        nf = self._freqs.size
        y = (r[:, :nf] + 1j * r[:, nf:]) * self._rot[k]
        e = np.einsum("ij,ij->i", blocks, blocks)
        ys = np.concatenate([self._hist_y, y])
        es = np.concatenate([self._hist_e, e])
        keep = WINDOW_SUBS - 1
        self._hist_y, self._hist_e = ys[-keep:], es[-keep:]
        if ys.shape[0] < WINDOW_SUBS:
            return []
        return self._track(self._classify(ys, es))

    # --- per-window decision ------------------------------------------------------------------

    def _classify(self, ys: np.ndarray, es: np.ndarray) -> np.ndarray:
        """Digit index (KEYPAD row * 4 + column) per window, -1 where none."""
        nw = ys.shape[0] - WINDOW_SUBS + 1
        result = np.full(nw, -1)
        n = self._win
        w = ys[: nw, :8] + ys[1 : nw + 1, :8] + ys[2 : nw + 2, :8] + ys[3 : nw + 3, :8]
        mean_power = (es[:nw] + es[1 : nw + 1] + es[2 : nw + 2] + es[3 : nw + 3]) / n
        p_raw = (w.real**2 + w.imag**2) * (2.0 / (n * n))  # mean square of a tone on the bin
        rows = np.argmax(p_raw[:, :4], axis=1)
        cols = np.argmax(p_raw[:, 4:], axis=1) + 4
        idx = np.arange(nw)
        # screen: even the largest offset correction cannot bring these windows to a digit
        hi_row = p_raw[idx, rows] / self._worst_loss[rows]
        hi_col = p_raw[idx, cols] / self._worst_loss[cols]
        cand = np.flatnonzero((hi_row >= self._min_power) & (hi_col >= self._min_power)
                              & (hi_row + hi_col >= MIN_TONE_FRACTION * mean_power))
        if cand.size == 0:
            return result
        rows, cols = rows[cand], cols[cand]
        # frequency offset from the phase advance between consecutive sub-blocks
        two = np.stack([rows, cols], axis=1)  # (c, 2)
        seg = np.stack([ys[cand + i][np.arange(cand.size)[:, None], two] for i in range(WINDOW_SUBS)])
        adv = (seg[1:] * np.conj(seg[:-1])).sum(axis=0)
        df = np.angle(adv) * self.rate / (2 * np.pi * self._sub)  # (c, 2) Hz
        max_df = self._max_df[two]
        dev_ok = np.all(np.abs(df) <= max_df, axis=1)
        # power of each tone, corrected for the offset's loss in the window DFT
        loss = np.sinc(np.clip(df, -max_df, max_df) * (n / self.rate)) ** 2
        p = p_raw[cand[:, None], two] / loss
        harm = ys[cand[:, None], two + 8] + ys[cand[:, None] + 1, two + 8] + ys[cand[:, None] + 2, two + 8] \
            + ys[cand[:, None] + 3, two + 8]
        h = (harm.real**2 + harm.imag**2) * (2.0 / (n * n))
        with np.errstate(divide="ignore", invalid="ignore"):
            twist = 10.0 * np.log10(p[:, 1] / p[:, 0])
            ok = dev_ok & np.all(p >= self._min_power, axis=1)
            ok &= (twist <= MAX_REVERSE_TWIST_DB) & (twist >= -MAX_NORMAL_TWIST_DB)
            ok &= p.sum(axis=1) >= MIN_TONE_FRACTION * mean_power[cand]
            ok &= np.all(h <= MAX_HARMONIC_RATIO * p, axis=1)
        result[cand[ok]] = rows[ok] * 4 + (cols[ok] - 4)
        return result

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
