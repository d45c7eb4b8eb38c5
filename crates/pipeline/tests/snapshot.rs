//! Snapshot of the bundled model (`models/default`): a short generation at a fixed seed and
//! settings, summarised by statistics of its log-mel (overall mean and spread, eight band-group
//! means, the mean of the first and second half), compared with the values committed in
//! `tests/fixtures/snapshot/bundled.json`. Any unintended change to the generation path (text
//! encoding, conditioning, objective, sampler, windows, Griffin-Lim, weights loading) moves
//! them by far more than the tolerance, 2e-3 ln units; float noise across machines moves them
//! far less (the bossa demo made on another CPU, whose matrix kernels round differently,
//! differs from this machine's by -52 dB rms in the audio and by at most 1.1e-4 in these
//! statistics).
//!
//! A deliberate change (a new bundled model, a changed sampler) regenerates the file:
//! `MUSICDIFF_UPDATE_SNAPSHOT=1 cargo test -p musicdiff-pipeline --test snapshot`, and the
//! commit says why the numbers moved.

use std::path::{Path, PathBuf};

use musicdiff_pipeline::{Generator, Task};
use serde_json::{Value, json};

/// Largest change of a statistic (ln units) accepted as float noise.
const TOLERANCE: f64 = 2e-3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `[mean, std, band groups x 8, first half, second half]` of a `[n_mels, frames]` log-mel.
fn summary(m: &musicdiff_dsp::matrix::Matrix<f32>) -> Vec<f64> {
    let (rows, cols) = (m.rows(), m.cols());
    let all: Vec<f64> = m.as_slice().iter().map(|&v| v as f64).collect();
    let mean_of = |vals: &mut dyn Iterator<Item = f64>| {
        let (s, n) = vals.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        s / n.max(1) as f64
    };
    let mean = mean_of(&mut all.iter().copied());
    let std = (mean_of(&mut all.iter().map(|v| (v - mean).powi(2)))).sqrt();
    let mut out = vec![mean, std];
    for g in 0..8 {
        let bands = g * rows / 8..(g + 1) * rows / 8;
        out.push(mean_of(
            &mut bands.flat_map(|b| all[b * cols..(b + 1) * cols].iter().copied()),
        ));
    }
    for half in [0..cols / 2, cols / 2..cols] {
        out.push(mean_of(&mut (0..rows).flat_map(|b| {
            all[b * cols + half.start..b * cols + half.end]
                .iter()
                .copied()
        })));
    }
    out
}

#[test]
fn bundled_model_generation_matches_its_snapshot() {
    let generator = Generator::load(&repo().join("models/default")).unwrap();
    let prompt = "slow bossa nova on nylon guitar, A minor, 90 bpm";
    let mut req = generator.request(Task::Generate { seconds: 3.0 }, prompt);
    req.seed = 7;
    req.steps = 6;
    req.griffin_lim_iters = 4;
    let out = generator.run(&req, &mut |_| {}).unwrap();
    let got = summary(&out.log_mel);
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");

    let path = repo().join("tests/fixtures/snapshot/bundled.json");
    let model = &generator.meta().id;
    if std::env::var_os("MUSICDIFF_UPDATE_SNAPSHOT").is_some() {
        let record = json!({
            "model": model,
            "prompt": prompt,
            "seconds": 3.0, "seed": 7, "steps": 6, "griffin_lim_iters": 4,
            "samples": out.audio.len(),
            "summary": got,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        want["model"],
        json!(model),
        "the bundled model changed: update the snapshot"
    );
    assert_eq!(want["samples"], json!(out.audio.len()));
    let want: Vec<f64> = serde_json::from_value(want["summary"].clone()).unwrap();
    assert_eq!(want.len(), got.len());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert!(
            (w - g).abs() < TOLERANCE,
            "statistic {i}: {g} now, {w} in the snapshot\nall now: {got:?}"
        );
    }
}
