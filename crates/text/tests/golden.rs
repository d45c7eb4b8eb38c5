//! The burn MiniLM against sentence-transformers (golden values from
//! `tests/fixtures/text/make_text_golden.py`). Needs the model installed by
//! `scripts/fetch-assets.sh` (CI runs it with `--minimal`).

use std::path::PathBuf;

use burn::prelude::*;
use musicdiff_dsp::npy;
use musicdiff_text::{TextEncoder, TextError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    let assets = std::env::var_os("MUSICDIFF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("assets"));
    let dir = assets.join("minilm");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: run scripts/fetch-assets.sh --minimal first",
        dir.display()
    );
    dir
}

fn golden(name: &str) -> (Vec<usize>, Vec<f64>) {
    let a = npy::read(&root().join("tests/fixtures/text").join(name)).unwrap();
    (a.shape, a.data)
}

fn captions() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/text/captions.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Largest `|a - b|` between our values and the golden ones.
fn max_abs_diff(ours: &[f32], golden: &[f64]) -> f64 {
    assert_eq!(ours.len(), golden.len());
    ours.iter()
        .zip(golden)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn sentence_vectors_and_token_states_match_sentence_transformers() {
    let device = Device::flex();
    let enc = TextEncoder::load(&model_dir(), &device).unwrap();
    let caps = captions();
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let out = enc.encode(&refs).unwrap();
    assert!(out.truncated.is_empty());

    let (shape, want) = golden("sentence.npy");
    assert_eq!(out.sentence.dims(), [shape[0], shape[1]]);
    let got = to_vec(out.sentence);
    let worst = max_abs_diff(&got, &want);
    eprintln!("sentence vectors: max |difference| {worst:.2e}");
    assert!(worst < 1e-4, "sentence vectors differ by up to {worst}");

    // Token states of caption 0 (16 tokens; the batch pads it to the longest caption).
    let (shape, want) = golden("tokens_0.npy");
    let [_, l, d] = out.tokens.dims();
    assert_eq!(d, shape[1]);
    let got = to_vec(
        out.tokens
            .slice([0..1, 0..shape[0], 0..d])
            .reshape([shape[0] * d]),
    );
    let worst = max_abs_diff(&got, &want);
    eprintln!("token states: max |difference| {worst:.2e}");
    assert!(worst < 1e-4, "token states differ by up to {worst}");
    let mask: Vec<bool> = out.mask.into_data().try_to_vec::<bool>().unwrap();
    assert_eq!(mask[..l].iter().filter(|&&m| m).count(), shape[0]);
}

#[test]
fn related_captions_are_closer_than_unrelated_ones() {
    let enc = TextEncoder::load(&model_dir(), &Device::flex()).unwrap();
    let out = enc
        .encode(&[
            "relaxed bossa nova with an acoustic guitar",
            "slow bossa nova on nylon guitar, A minor, 90 bpm",
            "Baroque chorale for four voices in G major",
        ])
        .unwrap();
    let v = to_vec(out.sentence);
    let d = v.len() / 3;
    let cos = |i: usize, j: usize| -> f32 { (0..d).map(|k| v[i * d + k] * v[j * d + k]).sum() };
    assert!(
        cos(0, 1) > cos(0, 2) + 0.2,
        "related {} vs unrelated {}",
        cos(0, 1),
        cos(0, 2)
    );
}

#[test]
fn long_captions_are_truncated_and_reported() {
    let enc = TextEncoder::load(&model_dir(), &Device::flex()).unwrap();
    let long = "a very long caption about a smooth jazz trio ".repeat(60);
    let out = enc.encode(&["short one", &long]).unwrap();
    assert_eq!(out.truncated, vec![1]);
    assert_eq!(out.tokens.dims()[1], musicdiff_text::encoder::MAX_TOKENS);
}

#[test]
fn a_missing_model_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = TextEncoder::load(dir.path(), &Device::flex())
        .err()
        .unwrap();
    assert!(matches!(err, TextError::MissingFile { .. }));
    assert!(err.to_string().contains("scripts/fetch-assets.sh"), "{err}");
}
