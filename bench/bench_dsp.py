#!/usr/bin/env python3
"""DSP benchmark peer (run by scripts/bench-dsp.sh, never by the tests).

Makes a 30 s music-like clip, times musicdiff's Rust implementation (the bench_dsp example
binary) and librosa on it in the same run, checks that both give the same outputs, and prints
the speed ratios:
  (a) log-mel: librosa.feature.melspectrogram + ln(max(., 1e-5)), 22050 Hz, n_fft 1024,
      hop 256, 80 Slaney mels; filterbank built inside the timed call on both sides.
  (b) fast Griffin-Lim, 32 iterations, momentum 0.99, zero initial phase, on the clip's
      true STFT magnitude.
Timings are medians over repeats. Both sides use whatever threads they use by default on
this machine (numpy's FFT is single-threaded; its BLAS and our rayon pool use every core).

Usage: bench_dsp.py RUST_BENCH_BINARY [--seconds 30] [--repeats 9]
"""

import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf

SR = 22050


def make_clip(seconds: float, seed: int = 1) -> np.ndarray:
    """Harmonic notes with decays, a bass line, a slow chirp and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    note_len = 0.25
    for i in range(int(seconds / note_len)):
        start = i * note_len
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12.0)
        seg = slice(int(start * SR), min(n, int((start + 1.0) * SR)))
        tt = t[seg] - start
        env = np.exp(-tt * 4.0)
        for k in range(1, 6):
            y[seg] += env * np.sin(2 * np.pi * f0 * k * tt) / k
    y += 0.1 * np.sin(2 * np.pi * 55.0 * t)
    y += 0.003 * rng.standard_normal(n)
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rust_bench")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        clip = make_clip(args.seconds)
        wav = tmp / "clip.wav"
        sf.write(wav, clip, SR, subtype="FLOAT")

        rust = json.loads(
            subprocess.run(
                [args.rust_bench, str(wav), str(tmp), str(args.repeats)],
                check=True, capture_output=True, text=True,
            ).stdout
        )

        # Import librosa only now: importing it starts background work (numba, thread pools)
        # that would steal a core from the Rust timings above.
        import librosa

        y, _ = sf.read(wav, dtype="float32")

        def logmel():
            mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=256, n_mels=80)
            return np.log(np.maximum(mel, 1e-5))

        lib_logmel_s, lib_logmel = median_time(logmel, args.repeats)
        mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))

        def gl():
            return librosa.griffinlim(mag, n_iter=32, hop_length=256, momentum=0.99, init=None,
                                      length=len(y))

        lib_gl_s, lib_gl = median_time(gl, max(1, (args.repeats + 1) // 2))

        ours_logmel = np.load(tmp / "rust_logmel.npy")
        ours_gl, _ = sf.read(tmp / "rust_gl.wav", dtype="float32")

    import librosa

    def sc(signal):
        s = np.abs(librosa.stft(signal, n_fft=1024, hop_length=256))
        return float(np.linalg.norm(s - mag) / np.linalg.norm(mag))

    logmel_diff = float(np.max(np.abs(ours_logmel - lib_logmel) / np.maximum(np.abs(lib_logmel), 1.0)))
    gl_rel = float(np.linalg.norm(ours_gl - lib_gl) / np.linalg.norm(lib_gl))
    r_logmel = lib_logmel_s / rust["logmel_s"]
    r_gl = lib_gl_s / rust["griffinlim32_s"]
    print(f"clip: {args.seconds:.0f} s at {SR} Hz; librosa {librosa.__version__}, numpy {np.__version__}; "
          f"musicdiff with {rust['threads']} threads")
    print(f"{'stage':<28}{'librosa':>10}{'musicdiff':>11}{'speed-up':>10}  outputs")
    print(f"{'log-mel (80 mels)':<28}{lib_logmel_s:>9.4f}s{rust['logmel_s']:>10.4f}s{r_logmel:>9.1f}x"
          f"  max relative difference {logmel_diff:.1e}")
    print(f"{'griffin-lim (32 iters)':<28}{lib_gl_s:>9.4f}s{rust['griffinlim32_s']:>10.4f}s{r_gl:>9.1f}x"
          f"  waveform relative L2 difference {gl_rel:.1e}; spectral convergence "
          f"librosa {sc(lib_gl):.4f}, musicdiff {sc(ours_gl):.4f}")
    ok = r_logmel >= 3.0 and r_gl >= 2.0 and logmel_diff < 1e-4 and gl_rel < 1e-2
    print(f"targets (log-mel >= 3x, griffin-lim >= 2x, equal outputs): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
