"""Tone generation and measurement: sines and beeps to play, frequency and level to check audio by."""

from __future__ import annotations

import math

import numpy as np

from gateway.media.frames import SAMPLE_RATE

FULL_SCALE = 32768.0  # 0 dBFS reference for rms_dbfs
BEEP_FADE_SECONDS = 0.005  # raised-cosine ramps so a beep does not click
_MIN_FFT = 4096  # zero-padding floor: short inputs still get fine bins to interpolate between
_PAD_LIMIT = 1 << 16  # inputs longer than this already have fine bins: no 4x zero-padding


def sine(freq_hz: float, seconds: float, amplitude: float = 0.5, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A sine of `amplitude` (fraction of full scale) lasting round(seconds * rate) samples, as int16."""
    n = max(0, round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    wave = amplitude * 32767.0 * np.sin(2.0 * np.pi * freq_hz * t)
    return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)


def beep(seconds: float = 0.25, freq: float = 1000.0) -> np.ndarray:
    """The gateway's beep: a half-scale 8 kHz sine with short fades in and out."""
    tone = sine(freq, seconds).astype(np.float64)
    ramp = min(round(BEEP_FADE_SECONDS * SAMPLE_RATE), tone.size // 2)
    if ramp:
        fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        tone[:ramp] *= fade
        tone[tone.size - ramp :] *= fade[::-1]
    return np.rint(tone).astype(np.int16)


# Call-progress tones: (frequencies in Hz, cadence as on/off seconds). "eu" is the CEPT/ITU-T E.180
# recommendation most of Europe uses; "us" is the North American precise tone plan.
PROGRESS_TONES = {
    "eu": {"ringback": ((425.0,), (1.0, 4.0)), "busy": ((425.0,), (0.5, 0.5)),
           "congestion": ((425.0,), (0.2, 0.2))},
    "us": {"ringback": ((440.0, 480.0), (2.0, 4.0)), "busy": ((480.0, 620.0), (0.5, 0.5)),
           "congestion": ((480.0, 620.0), (0.25, 0.25))},
}
PROGRESS_LEVEL = 0.1  # fraction of full scale per frequency: about -23 dBFS, a typical network level


def progress_tone(kind: str, region: str = "eu") -> np.ndarray:
    """One cadence period (tone then silence) of a call-progress tone, to be looped; int16 at 8 kHz."""
    try:
        freqs, (on, off) = PROGRESS_TONES[region][kind]
    except KeyError:
        raise ValueError(f"no {kind!r} tone for region {region!r} (regions: {', '.join(PROGRESS_TONES)}; "
                         f"tones: {', '.join(PROGRESS_TONES['eu'])})") from None
    tone = sum(sine(f, on, amplitude=PROGRESS_LEVEL).astype(np.int32) for f in freqs)
    return np.concatenate([np.asarray(tone, dtype=np.int16), np.zeros(round(off * SAMPLE_RATE), dtype=np.int16)])


def dominant_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Frequency in Hz of the strongest spectral peak (Hann window, zero-padded FFT, log-parabolic
    interpolation between bins). 0.0 for silence or fewer than 3 samples."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size < 3:
        return 0.0
    x = (x - x.mean()) * np.hanning(x.size)
    pad = 4 if x.size <= _PAD_LIMIT else 1
    nfft = max(_MIN_FFT, 1 << (pad * x.size - 1).bit_length())
    spectrum = np.abs(np.fft.rfft(x, nfft))
    k = int(np.argmax(spectrum[1:-1])) + 1
    if spectrum[k] <= 0.0:
        return 0.0
    a, b, c = np.log(np.maximum(spectrum[k - 1 : k + 2], 1e-300))
    denom = a - 2.0 * b + c
    offset = 0.5 * (a - c) / denom if denom < 0.0 else 0.0
    return float((k + offset) * rate / nfft)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level relative to int16 full scale (a full-scale sine is about -3 dBFS); -inf for silence."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(x * x)))
    return 20.0 * math.log10(rms / FULL_SCALE) if rms > 0.0 else -math.inf
