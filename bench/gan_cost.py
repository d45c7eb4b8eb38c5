"""What the GAN terms of Vocos would cost per vocoder training step on this CPU (not a test).

Builds the two discriminators of the Vocos reference recipe in PyTorch, at the sizes
docs/vocoder-design.md section 1.4 reads from `vocos/discriminators.py`:
- MPD, HiFi-GAN's multi-period discriminator (Kong et al. 2020): periods 2, 3, 5, 7, 11; per
  period 2-D convs over [T/p, p], kernel (5, 1), channels 1-32-128-512-1024-1024, strides
  3, 3, 3, 3, 1, LeakyReLU 0.1, a (3, 1) output conv;
- MRD, the DAC-style multi-resolution discriminator: complex STFT at windows 2048, 1024, 512
  (hop a quarter), 5 frequency bands, per band five Conv2d of 32 channels (kernels (3, 9) with
  frequency strides 1, 2, 2, 2, then (3, 3)), an output conv.
Weight norm is left out (it changes no shapes and little time). It then times, on the vocoder's
training batch (16 crops of 16 384 samples), one discriminator step (real and fake through
both discriminators, hinge loss, backward, Adam) and the generator's adversarial part (fake
through both, hinge + feature-matching loss, backward to the waveform), the median of a few
runs each, and prints them beside the generator step musicdiff measured (passed in).

Usage: python3 bench/gan_cost.py [--generator-step SECONDS] [--threads 2] [--runs 3]
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class PeriodDisc(nn.Module):
    def __init__(self, period):
        super().__init__()
        self.period = period
        chans = [1, 32, 128, 512, 1024, 1024]
        strides = [3, 3, 3, 3, 1]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], (5, 1), (strides[i], 1), padding=(2, 0))
            for i in range(5)
        )
        self.post = nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x):  # x [B, T]
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, 1, -1, self.period)  # [B, 1, T/p, p]
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            feats.append(x)
        x = self.post(x)
        feats.append(x)
        return x.flatten(1), feats


class BandDisc(nn.Module):
    """One resolution of the DAC-style MRD: complex STFT split into 5 bands."""

    BANDS = [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]

    def __init__(self, window):
        super().__init__()
        self.window = window
        self.hop = window // 4
        self.register_buffer("win", torch.hann_window(window))
        bins = window // 2 + 1
        self.edges = [(int(lo * bins), int(hi * bins)) for lo, hi in self.BANDS]

        def stack():
            return nn.ModuleList(
                [
                    nn.Conv2d(2, 32, (3, 9), (1, 1), padding=(1, 4)),
                    nn.Conv2d(32, 32, (3, 9), (1, 2), padding=(1, 4)),
                    nn.Conv2d(32, 32, (3, 9), (1, 2), padding=(1, 4)),
                    nn.Conv2d(32, 32, (3, 9), (1, 2), padding=(1, 4)),
                    nn.Conv2d(32, 32, (3, 3), (1, 1), padding=(1, 1)),
                ]
            )

        self.bands = nn.ModuleList(stack() for _ in self.BANDS)
        self.post = nn.Conv2d(32, 1, (3, 3), 1, padding=(1, 1))

    def forward(self, x):  # x [B, T]
        x = x - x.mean(dim=-1, keepdim=True)
        x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
        spec = torch.stft(x, self.window, self.hop, window=self.win, return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B, 2, frames, bins]
        feats, outs = [], []
        for (lo, hi), convs in zip(self.edges, self.bands):
            h = spec[..., lo:hi]
            for c in convs:
                h = F.leaky_relu(c(h), 0.1)
                feats.append(h)
            outs.append(h)
        h = self.post(torch.cat(outs, dim=-1))
        feats.append(h)
        return h.flatten(1), feats


class Discriminators(nn.Module):
    def __init__(self):
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDisc(p) for p in (2, 3, 5, 7, 11)] + [BandDisc(w) for w in (2048, 1024, 512)]
        )

    def forward(self, x):
        return [d(x) for d in self.subs]


def median_time(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator-step", type=float, default=None,
                    help="seconds per generator step measured by musicdiff (for the ratio)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16384)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    disc = Discriminators()
    opt = torch.optim.AdamW(disc.parameters(), lr=5e-4, betas=(0.8, 0.9))
    params = sum(p.numel() for p in disc.parameters())
    real = torch.randn(a.batch, a.samples) * 0.1
    fake = torch.randn(a.batch, a.samples, requires_grad=True)

    def d_step():
        opt.zero_grad()
        loss = 0.0
        for (dr, _), (df, _) in zip(disc(real), disc(fake.detach())):
            loss = loss + F.relu(1 - dr).mean() + F.relu(1 + df).mean()
        loss.backward()
        opt.step()

    def g_adversarial():
        fake.grad = None
        with torch.no_grad():
            real_feats = [f for _, f in disc(real)]
        loss = 0.0
        for (df, ff), rf in zip(disc(fake), real_feats):
            loss = loss + F.relu(1 - df).mean()
            loss = loss + sum((a - b).abs().mean() for a, b in zip(ff, rf)) / len(ff)
        loss.backward()

    td = median_time(d_step, a.runs)
    tg = median_time(g_adversarial, a.runs)
    print(f"discriminators: {params / 1e6:.2f} M parameters (MPD periods 2-11, MRD 2048/1024/512)")
    print(f"batch {a.batch} x {a.samples} samples, torch {torch.__version__}, {a.threads} threads, median of {a.runs}")
    print(f"| part | seconds per step |")
    print(f"|---|---|")
    print(f"| discriminator step (real + fake, hinge, backward, AdamW) | {td:.2f} |")
    print(f"| generator's adversarial + feature-matching part (forward, backward to the waveform) | {tg:.2f} |")
    if a.generator_step:
        extra = td + tg
        print(f"| musicdiff generator step (reconstruction loss only) | {a.generator_step:.2f} |")
        print(f"\nA GAN step costs {extra + a.generator_step:.2f} s: {(extra + a.generator_step) / a.generator_step:.0f}x the reconstruction-only step.")


if __name__ == "__main__":
    main()
