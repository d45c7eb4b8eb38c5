//! Forward speed of a vocoder size at random weights: 10 s of log-mel (861 frames) converted
//! `runs` times after a warm-up; prints the best time and the real-time multiple. The size is
//! the `[model]` table of a vocoder training config (`configs/vocoder/*.toml`).
//!
//! `cargo run --release -p musicdiff-vocoder --example speed -- configs/vocoder/small.toml [runs]`

use std::time::Instant;

use burn::prelude::*;
use musicdiff_dsp::matrix::Matrix;
use musicdiff_vocoder::{Vocoder, VocoderConfig, Vocos};

#[derive(serde::Deserialize)]
struct File {
    model: VocoderConfig,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: speed CONFIG.toml [runs] (e.g. configs/vocoder/small.toml)");
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let text = std::fs::read_to_string(path).expect("a readable config");
    let cfg = toml::from_str::<File>(&text)
        .expect("a vocoder config")
        .model;
    let device = Device::flex();
    device.seed(0);
    let vocoder = Vocoder::new(Vocos::new(&cfg, &device), &device);
    let frames = 861;
    let data = (0..cfg.n_mels * frames)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) * 8.0 - 9.0)
        .collect();
    let mel = Matrix::from_vec(cfg.n_mels, frames, data);
    let seconds = ((frames - 1) * cfg.hop_length) as f64 / cfg.sample_rate as f64;
    vocoder.synthesise(&mel, None).expect("converts");
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        vocoder.synthesise(&mel, None).expect("converts");
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{path}: {:.2} M parameters, {:.2} M MAC/frame; {seconds:.2} s of audio in {:.1} ms (best of {runs}) = {:.0}x real time",
        Vocos::new(&cfg, &device).num_params() as f64 / 1e6,
        cfg.macs_per_frame() as f64 / 1e6,
        best * 1e3,
        seconds / best
    );
}
