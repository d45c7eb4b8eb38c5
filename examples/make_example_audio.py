#!/usr/bin/env python3
"""Write examples/nylon_arpeggio.ogg: 8 s of a synthetic nylon-string guitar (Karplus-Strong
plucked strings) arpeggiating Am - Dm - E7 - Am at 90 bpm, with a soft bass, in stereo at
44.1 kHz so that the README's round trip exercises decoding, mixdown and resampling.

Run once by a developer (the .ogg is committed):  python3 examples/make_example_audio.py
Needs numpy and soundfile (pip install numpy soundfile).
"""

import pathlib

import numpy as np
import soundfile as sf

SR = 44100
BPM = 90.0
OUT = pathlib.Path(__file__).resolve().parent / "nylon_arpeggio.ogg"


def pluck(freq: float, seconds: float, rng: np.random.Generator, damping: float = 0.996) -> np.ndarray:
    """Karplus-Strong: a noise burst circulating in a delay line with a two-tap lowpass."""
    n = int(seconds * SR)
    period = max(2, int(round(SR / freq)))
    out = np.zeros(n + period + 1)
    burst = rng.uniform(-1.0, 1.0, period)
    # Soften the attack like a finger rather than a pick.
    burst = np.convolve(burst, np.ones(4) / 4.0, mode="same")
    out[:period] = burst
    for start in range(period, n, period):
        end = min(start + period, n)
        prev = out[start - period : end - period + 1]
        out[start:end] = damping * 0.5 * (prev[:-1] + prev[1:])
    return out[:n]


def midi_hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def main() -> None:
    rng = np.random.default_rng(2026)
    beat = 60.0 / BPM
    chords = [
        [57, 60, 64, 69],  # A minor
        [50, 57, 62, 65],  # D minor
        [52, 56, 59, 62],  # E7
        [57, 60, 64, 69],  # A minor
    ]
    total = int(SR * 8.0)
    left = np.zeros(total)
    right = np.zeros(total)
    t = 0.0
    for chord in chords:
        # Bass on the beat, then an up-down arpeggio in eighth notes.
        pattern = [chord[0] - 12, chord[1], chord[2], chord[3], chord[2], chord[1]]
        for i, note in enumerate(pattern):
            start = int((t + i * beat / 2.0) * SR)
            if start >= total:
                break
            tone = pluck(midi_hz(note), 2.0, rng) * (0.9 if i == 0 else 0.55)
            end = min(total, start + len(tone))
            pan = 0.5 + 0.35 * np.tanh((note - 60) / 8.0)
            left[start:end] += (1.0 - pan) * tone[: end - start]
            right[start:end] += pan * tone[: end - start]
        t += 3.0 * beat  # each chord lasts three beats (six eighth notes)
    fade = np.linspace(1.0, 0.0, SR // 2)
    left[-len(fade):] *= fade
    right[-len(fade):] *= fade
    stereo = np.stack([left, right], axis=1)
    stereo *= 0.8 / np.max(np.abs(stereo))
    sf.write(OUT, stereo, SR, format="OGG", subtype="VORBIS")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
