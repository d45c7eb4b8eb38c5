//! Decoding every supported container, and refusing damaged or unsupported files with an error
//! that names the file and the problem.

use std::path::{Path, PathBuf};

use musicdiff_dsp::DspError;
use musicdiff_dsp::audio::decode_file;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/audio")
        .join(name)
}

fn reference() -> Vec<f32> {
    decode_file(&fixture("clip_22k.wav"))
        .unwrap()
        .channels
        .remove(0)
}

/// Best normalised cross-correlation of `b` against `a` over small lags (lossy codecs may
/// shift the signal by their encoder delay when gapless information is missing).
fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (f64, isize) {
    let mut best = (f64::MIN, 0isize);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in a.iter().enumerate() {
            let j = i as isize + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            let y = b[j as usize];
            ab += x as f64 * y as f64;
            aa += x as f64 * x as f64;
            bb += y as f64 * y as f64;
        }
        let c = ab / (aa.sqrt() * bb.sqrt()).max(1e-30);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

#[test]
fn lossless_formats_decode_to_the_same_samples() {
    let wav = reference();
    let flac = decode_file(&fixture("clip_22k.flac")).unwrap();
    assert_eq!(flac.sample_rate, 22050);
    assert_eq!(flac.channels[0], wav);
    let f32wav = decode_file(&fixture("clip_22k_f32.wav")).unwrap();
    let max = wav
        .iter()
        .zip(&f32wav.channels[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // The float file holds the unquantised signal; 16-bit quantisation is <= 1/65536 apart.
    assert!(max <= 1.0 / 65536.0 + 1e-7, "max difference {max}");
}

#[test]
fn lossy_formats_decode_to_the_same_music() {
    let wav = reference();
    for name in ["clip_22k.mp3", "clip_22k.ogg"] {
        let a = decode_file(&fixture(name)).unwrap();
        assert_eq!(a.sample_rate, 22050, "{name}");
        let got = &a.channels[0];
        let len_diff = (got.len() as isize - wav.len() as isize).abs();
        assert!(
            len_diff <= 2304,
            "{name}: {} vs {} samples",
            got.len(),
            wav.len()
        );
        let (corr, lag) = best_correlation(&wav, got, 1200);
        assert!(corr > 0.95, "{name}: correlation {corr} at lag {lag}");
    }
}

fn expect_error(path: &Path, what: &str) -> DspError {
    let err = decode_file(path).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message must name the file: {msg}"
    );
    assert!(msg.contains(what), "expected '{what}' in: {msg}");
    err
}

#[test]
fn damaged_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    expect_error(&missing, "No such file");

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    expect_error(&empty, "empty");

    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "This is a text file, not audio.\n".repeat(20)).unwrap();
    expect_error(&text, "not a recognised audio file");

    for name in ["clip_22k.wav", "clip_22k.flac", "clip_22k.mp3"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let cut = dir.path().join(format!("cut_{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = decode_file(&cut);
        let msg = format!("{err:?}");
        assert!(
            matches!(err, Err(DspError::CorruptStream { .. })),
            "{name} cut in half must be reported as truncated: {msg}"
        );
    }

    // Overwrite the middle of the FLAC stream with garbage: its frame CRCs catch it.
    let mut bytes = std::fs::read(fixture("clip_22k.flac")).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 2000] {
        *b = 0x5A;
    }
    let garbled = dir.path().join("garbled.flac");
    std::fs::write(&garbled, &bytes).unwrap();
    expect_error(&garbled, "corrupt");
}

#[test]
fn unsupported_codecs_are_named() {
    expect_error(&fixture("clip_22k.opus"), "unsupported codec Opus");
}
