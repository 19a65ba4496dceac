"""In-band DTMF: a generator for outbound digits and a streaming detector meeting the usual
exchange acceptance limits (ITU-T Q.24 / Bellcore), in vectorised numpy.

Detector design: 20 ms windows with a 5 ms hop, each correlated with the 8 DTMF frequencies (one
matrix product for all windows of a batch). A window holds a digit when one row and one column tone
are strong enough, within the frequency tolerance and twist limits, carry nearly all the window's
energy and have weak second harmonics; the frequency offset comes from the phase advance between the
window's four 5 ms sub-blocks. Most windows never get that far: one whose tone bins cannot pass even
at the largest offset correction costs only the screen, a few plain float comparisons per window.
A digit needs MIN_RUN consecutive such windows; it ends at another digit or after MAX_GAP + 1
windows without a digit.

A live call needs the press, not the end: the detector reports each digit twice, once as a
DigitPress as soon as it is accepted (MIN_RUN windows, about 30 ms of tone; the analysis runs per
call frame) and once as a DigitEvent with start and end when it stops.
"""

from __future__ import annotations

import math
from collections import deque
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
BATCH_MS = 20  # audio gathered before analysis: one call frame, so a press is known within a frame
MAX_UNREAD_PRESSES = 256  # presses() keeps this many for a caller that never asks
_FEW_WINDOWS = 8  # batches up to this many windows are screened in plain Python
RING_BATCHES = 16  # batches a call's ring holds before its history moves back to the start
MAX_GAP = 8  # silent windows bridged inside a digit: a 10 ms break is one digit, a 40 ms pause two

_FULL_SCALE = 32768.0
_MAX_REVERSE_TWIST = 10.0 ** (MAX_REVERSE_TWIST_DB / 10.0)  # column over row power
_MIN_NORMAL_TWIST = 10.0 ** (-MAX_NORMAL_TWIST_DB / 10.0)


@dataclass(frozen=True)
class DigitEvent:
    """One detected digit; start and end in seconds from the first sample fed."""

    digit: str
    start: float
    end: float

    def as_dict(self) -> dict:
        return {"digit": self.digit, "start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class DigitPress:
    """A digit accepted while it may still sound: start of its tone and the point in the audio where
    it met the minimum duration (`accepted`), in seconds from the first sample fed."""

    digit: str
    start: float
    accepted: float


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
    flush() at end of stream returns a digit still sounding. presses() gives each digit earlier,
    as soon as it has sounded the minimum duration (what a live call reacts to)."""

    def __init__(self, rate: int = SAMPLE_RATE, batch_ms: int = BATCH_MS):
        if rate <= 0 or rate * SUB_MS % 1000:
            raise ValueError(f"rate {rate} Hz does not give whole {SUB_MS} ms sub-blocks")
        self.rate = int(rate)
        sub = self._sub = self.rate * SUB_MS // 1000
        n = self._win = sub * WINDOW_SUBS
        self._batch = max(sub, self.rate * batch_ms // 1000)
        fund = np.array(ROW_FREQS + COL_FREQS, dtype=np.float64)
        self._max_df = MAX_FREQ_DEVIATION * fund
        self._worst_loss = np.sinc(self._max_df * n / self.rate) ** 2
        self._min_power = (_FULL_SCALE * 10.0 ** (MIN_LEVEL_DBFS / 20.0)) ** 2
        self._power_scale = 2.0 / (n * n)  # |window DFT|^2 -> mean square of a tone on the bin
        self._fraction = MIN_TONE_FRACTION / n  # window energy -> least power the two tones must hold
        # window DFT at the 8 tones, cos and -sin interleaved, each column pair scaled so that
        # re^2 + im^2 is the tone's power raised by the largest offset loss (the screens' figure)
        angle = 2 * np.pi * np.outer(np.arange(n), fund) / self.rate
        gain = np.sqrt(self._power_scale / self._worst_loss)
        self._basis = np.empty((n, 16))
        self._basis[:, 0::2], self._basis[:, 1::2] = np.cos(angle) * gain, -np.sin(angle) * gain
        # windows and their DFT side by side: squared and summed by one product, they give each
        # window's energy and its 8 tones' power together
        self._sums = np.zeros((n + 16, 2))
        self._sums[:n, 0] = self._sums[n:, 1] = 1.0
        # candidates only: sub-block correlations at the tones and their second harmonics, brought
        # to the window's time reference so their phase advance gives each tone's frequency offset
        freqs = np.concatenate([fund, 2 * fund])
        angle = 2 * np.pi * np.outer(np.arange(sub), freqs) / self.rate
        self._sub_basis = np.empty((sub, 2 * freqs.size))
        self._sub_basis[:, 0::2], self._sub_basis[:, 1::2] = np.cos(angle), -np.sin(angle)
        self._sub_rot = np.exp(-2j * np.pi * np.outer(np.arange(WINDOW_SUBS) * sub, freqs) / self.rate)
        # the steady state of a call, one batch per feed(): the history then RING_BATCHES batches in
        # one buffer, the windows of each batch position prebuilt as views, their work arrays reused
        keep = self._keep = n - sub  # samples of history a batch's first window needs
        frame = self._frame = self._batch if self._batch % sub == 0 else -1
        nw = max(frame, 0) // sub
        self._ring = np.zeros(keep + RING_BATCHES * max(frame, 0))
        self._ring_views = [np.lib.stride_tricks.as_strided(self._ring[k * max(frame, 0) :], (nw, n), (sub * 8, 8),
                                                            writeable=False) for k in range(RING_BATCHES)]
        self._phase = 0
        self._work = np.zeros((nw, n + 16))
        self._work_sq = np.zeros((nw, n + 16))
        self._work_windows, self._work_dft = self._work[:, :n], self._work[:, n:]
        self._hist: np.ndarray | None = np.zeros(0)  # samples from the next window's start; None: in the ring
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self._next_window = 0  # absolute index of the next window to classify
        self._cur = -1  # digit index being tracked, -1 none
        self._start = self._last = self._run = self._best = self._misses = 0
        self._presses: deque[DigitPress] = deque(maxlen=MAX_UNREAD_PRESSES)

    def feed(self, samples: np.ndarray) -> list[DigitEvent]:
        """Add audio; returns digits that ended. Audio is analysed in batches of batch_ms, so a
        digit (and its press) is known at most that much later than it could be."""
        x = as_int16(samples)
        if x.size == self._frame and not self._pending and (self._hist is None or self._hist.size == self._keep):
            return self._feed_batch(x)
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

    def presses(self) -> list[DigitPress]:
        """Digits accepted since the last call, oldest first: each digit once, as soon as its tone
        has lasted the minimum duration (about 30 ms) and while it may still sound. The same digit
        comes back with its end from feed() or flush() once it stops."""
        out = list(self._presses)
        self._presses.clear()
        return out

    def _feed_batch(self, x: np.ndarray) -> list[DigitEvent]:
        """One batch with its history in the ring: no allocation but the results."""
        ring, keep, size = self._ring, self._keep, self._frame
        if self._hist is not None:
            ring[:keep] = self._hist
            self._hist, self._phase = None, 0
        k = self._phase
        if k == RING_BATCHES:
            ring[:keep] = ring[k * size :]
            k = 0
        ring[keep + k * size : keep + (k + 1) * size] = x
        self._phase = k + 1
        work = self._work
        np.copyto(self._work_windows, self._ring_views[k])
        np.matmul(self._work_windows, self._basis, out=self._work_dft)
        np.multiply(work, work, out=self._work_sq)
        return self._analyse(self._work_windows, self._work_dft, np.dot(self._work_sq, self._sums))

    def _process(self) -> list[DigitEvent]:
        hist = self._hist
        if hist is None:
            hist = self._ring[self._phase * self._frame :][: self._keep]
        x = np.concatenate([hist, *self._pending])  # float: the history is
        self._pending, self._pending_size = [], 0
        sub, n = self._sub, self._win
        if x.size < n:
            self._hist = x
            return []
        nw = (x.size - n) // sub + 1
        self._hist = x[nw * sub :]
        work = np.empty((nw, n + 16))
        work[:, :n] = np.lib.stride_tricks.as_strided(x, (nw, n), (sub * x.itemsize, x.itemsize), writeable=False)
        np.matmul(work[:, :n], self._basis, out=work[:, n:])
        return self._analyse(work[:, :n], work[:, n:], np.dot(work * work, self._sums))

    # --- per-window decision ------------------------------------------------------------------

    def _analyse(self, windows: np.ndarray, dft: np.ndarray, sums: np.ndarray) -> list[DigitEvent]:
        """`sums` holds each window's energy and its 8 tones' screen power."""
        nw = windows.shape[0]
        base = self._next_window
        self._next_window += nw
        if nw <= _FEW_WINDOWS:  # a call frame: Python floats cost less than numpy calls on 4 values
            cand = self._screen_few(dft, sums)
        else:
            cand = self._screen(dft, sums)
        digits = None if cand is None else self._classify(windows, dft, sums[:, 0], cand)
        if digits is None:
            return self._no_digit(nw)
        return self._track(digits, base)

    # Two screens before the full checks, both at the largest frequency-offset correction (so they
    # only drop windows the checks would refuse): all 8 tones' power together, then the strongest
    # row and column tone alone, each against two tones at the minimum level and MIN_TONE_FRACTION
    # of the window's energy.

    def _screen(self, dft: np.ndarray, sums: np.ndarray) -> np.ndarray | None:
        energy, total = sums[:, 0], sums[:, 1]
        need = energy * self._fraction
        cand = np.flatnonzero((total >= 2 * self._min_power) & (total >= need))
        if cand.size == 0:
            return None
        pairs = dft[cand].reshape(cand.size, 8, 2)
        best = np.einsum("ijk,ijk->ij", pairs, pairs).reshape(cand.size, 2, 4).max(axis=2)
        cand = cand[(best.min(axis=1) >= self._min_power) & (best.sum(axis=1) >= need[cand])]
        return cand if cand.size else None

    def _screen_few(self, dft: np.ndarray, sums: np.ndarray) -> np.ndarray | None:
        """_screen in plain Python floats, for a handful of windows."""
        floor, fraction, least = 2 * self._min_power, self._fraction, self._min_power
        cand = []
        for i, (energy, total) in enumerate(sums.tolist()):
            need = energy * fraction
            if total < floor or total < need:
                continue
            v = dft[i].tolist()
            power = [v[k] * v[k] + v[k + 1] * v[k + 1] for k in range(0, 16, 2)]
            row, col = max(power[:4]), max(power[4:])
            if row >= least and col >= least and row + col >= need:
                cand.append(i)
        return np.array(cand) if cand else None

    def _classify(self, windows: np.ndarray, dft: np.ndarray, energy: np.ndarray,
                  cand: np.ndarray) -> np.ndarray | None:
        """Digit index (KEYPAD row * 4 + column) per window, -1 where none; None when no window
        holds a digit. Only the windows in `cand` (the screens' survivors) can."""
        c, sub = cand.size, self._sub
        pairs = dft[cand].reshape(c, 8, 2)
        p_raw = np.einsum("ijk,ijk->ij", pairs, pairs) * self._worst_loss  # mean square of each tone on its bin
        two = p_raw.reshape(c, 2, 4).argmax(axis=2)  # strongest row tone, strongest column tone
        two[:, 1] += 4
        rows, cols = two[:, 0], two[:, 1]
        idx = np.arange(c)
        subs = windows[cand].reshape(c * WINDOW_SUBS, sub) @ self._sub_basis
        ys = subs.view(np.complex128).reshape(c, WINDOW_SUBS, -1) * self._sub_rot  # (c, 4, 16)
        need = energy[cand] * self._fraction
        # tones (and their harmonics) per sub-block: the phase advance gives each tone's frequency offset
        seg = ys.transpose(0, 2, 1)[idx[:, None], np.concatenate((two, two + 8), axis=1)]  # (c, 4, 4)
        adv = (seg[:, :2, 1:] * seg[:, :2, :-1].conj()).sum(axis=2)
        df = np.arctan2(adv.imag, adv.real) * (self.rate / (2 * np.pi * sub))  # (c, 2) Hz
        max_df = self._max_df[two]
        off = np.abs(df)
        # power of each tone, corrected for the offset's loss in the window DFT (a sinc squared)
        x = np.minimum(off, max_df) * (np.pi * self._win / self.rate) + 1e-12
        p = p_raw[idx[:, None], two] * (x / np.sin(x)) ** 2
        harm = seg[:, 2:].sum(axis=2)
        h = (harm.real**2 + harm.imag**2) * self._power_scale
        twist = p[:, 1] / p[:, 0]  # column over row
        ok = (off <= max_df).all(axis=1) & (p.min(axis=1) >= self._min_power)
        ok &= (twist <= _MAX_REVERSE_TWIST) & (twist >= _MIN_NORMAL_TWIST)
        ok &= p.sum(axis=1) >= need
        ok &= (h <= MAX_HARMONIC_RATIO * p).all(axis=1)
        if not ok.any():
            return None
        result = np.full(windows.shape[0], -1)
        result[cand[ok]] = rows[ok] * 4 + (cols[ok] - 4)
        return result

    # --- digit tracking over windows ----------------------------------------------------------

    def _no_digit(self, nw: int) -> list[DigitEvent]:
        """`nw` windows without a digit: what _track does with them, without the loop."""
        events: list[DigitEvent] = []
        if self._cur >= 0:
            self._run = 0
            self._misses += nw
            if self._misses > MAX_GAP:
                self._close(events)
        return events

    def _track(self, digits: np.ndarray, base: int) -> list[DigitEvent]:
        events: list[DigitEvent] = []
        for j, v in enumerate(digits.tolist(), start=base):
            if self._cur >= 0:
                if v == self._cur:
                    self._last, self._misses = j, 0
                    self._run += 1
                    if self._run > self._best:
                        self._best = self._run
                        if self._best == MIN_RUN:
                            self._accept(j)
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
                if MIN_RUN <= 1:
                    self._accept(j)
        return events

    def _accept(self, window: int) -> None:
        digit = KEYPAD[self._cur // 4][self._cur % 4]
        self._presses.append(DigitPress(digit, self._start * self._sub / self.rate,
                                        (window * self._sub + self._win) / self.rate))

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
