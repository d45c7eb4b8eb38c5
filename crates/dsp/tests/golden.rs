//! Compares the DSP crate against golden values librosa 0.11 produced
//! (`tests/fixtures/make_golden.py`, outputs committed under `tests/fixtures/golden`).

use std::path::PathBuf;

use musicdiff_dsp::Matrix;
use musicdiff_dsp::audio::{decode_file, load_mono};
use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
use musicdiff_dsp::griffin_lim::{GriffinLimConfig, PhaseInit, griffin_lim};
use musicdiff_dsp::mel::{MelConfig, MelFilterbank, MelNorm, MelScale};
use musicdiff_dsp::npy;
use musicdiff_dsp::stft::{Stft, StftConfig};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn golden(name: &str) -> Matrix<f64> {
    npy::read(&fixtures().join("golden").join(name))
        .unwrap()
        .into_matrix()
        .unwrap()
}

fn clip() -> Vec<f32> {
    let a = decode_file(&fixtures().join("audio/clip_22k.wav")).unwrap();
    assert_eq!(a.sample_rate, 22050);
    a.channels[0].clone()
}

/// Largest `|a - b| / max(|b|, floor)`: relative error, with an absolute floor for values
/// that are zero in the reference.
fn max_rel_err(a: &Matrix<f64>, b: &Matrix<f64>, floor: f64) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f64::max)
}

#[test]
fn decoded_samples_match_libsndfile() {
    let x = clip();
    let g = golden("clip_22k_samples.npy");
    assert_eq!(x.len(), g.cols());
    assert!(x.iter().zip(g.as_slice()).all(|(a, b)| *a as f64 == *b));
}

#[test]
fn mel_filterbanks_match_librosa() {
    let cases = [
        (
            "melfb_slaney.npy",
            1024,
            80,
            0.0,
            None,
            MelScale::Slaney,
            MelNorm::Slaney,
        ),
        (
            "melfb_htk_nonorm.npy",
            1024,
            64,
            0.0,
            None,
            MelScale::Htk,
            MelNorm::None,
        ),
        (
            "melfb_slaney_band.npy",
            2048,
            128,
            30.0,
            Some(8000.0),
            MelScale::Slaney,
            MelNorm::Slaney,
        ),
    ];
    for (file, n_fft, n_mels, fmin, fmax, scale, norm) in cases {
        let fb = MelFilterbank::new(MelConfig {
            sample_rate: 22050,
            n_fft,
            n_mels,
            fmin,
            fmax,
            scale,
            norm,
        })
        .unwrap();
        let g = golden(file);
        // Relative to each filter's peak: zero weights must be zero, others within 1e-10.
        let peak = g.as_slice().iter().copied().fold(0.0, f64::max);
        let err = max_rel_err(fb.weights(), &g, peak);
        assert!(err < 1e-10, "{file}: relative error {err}");
        assert!(fb.empty_filters().is_empty());
    }
}

#[test]
fn stft_magnitudes_match_librosa() {
    let x: Vec<f64> = clip().iter().map(|&v| v as f64).collect();
    for (file, hop, win) in [
        ("stft_mag.npy", 256, 1024),
        ("stft_mag_win800_hop200.npy", 200, 800),
    ] {
        let stft = Stft::<f64>::new(StftConfig {
            win_length: win,
            ..StftConfig::new(1024, hop)
        })
        .unwrap();
        let spec = stft.forward(&x);
        let mag = spec.magnitude();
        let g = golden(file);
        let peak = g.as_slice().iter().copied().fold(0.0, f64::max);
        let err = max_rel_err(&mag, &g, peak * 1e-9);
        assert!(err < 1e-4, "{file}: relative error {err}");
    }
}

#[test]
fn mel_spectrograms_and_log_mel_match_librosa() {
    let x = clip();
    let ex = LogMelExtractor::new(SpectrogramConfig::default()).unwrap();
    let mel = ex.mel(&x);
    let g = golden("melspec_power2.npy");
    let err = max_rel_err(&mel, &g, 1e-10);
    assert!(err < 1e-4, "power-2 mel: relative error {err}");

    let log_mel = ex.log_mel(&x).map(|&v| v as f64);
    let g = golden("logmel.npy");
    let err = max_rel_err(&log_mel, &g, 1.0);
    assert!(err < 1e-4, "log-mel: relative error {err}");

    let htk = LogMelExtractor::new(SpectrogramConfig {
        n_mels: 64,
        power: 1.0,
        mel_scale: MelScale::Htk,
        mel_norm: MelNorm::None,
        fmin: 50.0,
        fmax: Some(9000.0),
        ..Default::default()
    })
    .unwrap();
    let err = max_rel_err(&htk.mel(&x), &golden("melspec_power1_htk.npy"), 1e-10);
    assert!(err < 1e-4, "power-1 HTK mel: relative error {err}");
}

#[test]
fn nnls_residual_is_no_worse_than_librosa() {
    let ex = LogMelExtractor::new(SpectrogramConfig::default()).unwrap();
    let mel = golden("melspec_power2.npy");
    let fb = ex.filterbank();
    let s = fb.nnls(&mel, musicdiff_dsp::griffin_lim::NNLS_ITERATIONS);
    assert!(s.as_slice().iter().all(|&v| v >= 0.0));
    let mut resid = 0.0;
    let mut norm = 0.0;
    let mut m = vec![0.0; fb.n_mels()];
    let st = s.transpose();
    let mt = mel.transpose();
    for t in 0..mel.cols() {
        fb.apply_frame(st.row(t), &mut m);
        for (a, b) in m.iter().zip(mt.row(t)) {
            resid += (a - b) * (a - b);
            norm += b * b;
        }
    }
    let ours = (resid / norm).sqrt();
    let meta = std::fs::read_to_string(fixtures().join("golden/meta.json")).unwrap();
    let librosa = json_number(&meta, "mel_to_stft_relative_residual");
    assert!(ours <= librosa, "ours {ours} vs librosa {librosa}");
}

/// Relative L2 distance and worst sample difference between `y` and the reference `g`.
fn waveform_error(y: &[f64], g: &Matrix<f64>) -> (f64, f64) {
    assert_eq!(y.len(), g.cols());
    let (mut diff2, mut ref2, mut worst) = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in y.iter().zip(g.as_slice()) {
        let d = a - b;
        diff2 += d * d;
        ref2 += b * b;
        worst = worst.max(d.abs());
    }
    ((diff2 / ref2).sqrt(), worst)
}

#[test]
fn griffin_lim_matches_librosa_with_zero_phase_init() {
    let n = clip().len();
    let g = golden("griffinlim_16_zero_init.npy");
    let cfg = GriffinLimConfig {
        n_iter: 16,
        momentum: 0.99,
        init: PhaseInit::Zero,
    };
    // In f64 the algorithm must be librosa's, step for step.
    let stft = Stft::<f64>::new(StftConfig::new(1024, 256)).unwrap();
    let y = griffin_lim(&stft, &golden("stft_mag.npy"), n, &cfg, &mut |_| {}).unwrap();
    let (rel, worst) = waveform_error(&y, &g);
    assert!(
        rel < 1e-6 && worst < 1e-6,
        "f64: relative L2 {rel}, worst sample {worst}"
    );

    // The f32 path used at run time drifts only by rounding, which momentum amplifies a bit.
    let stft = Stft::<f32>::new(StftConfig::new(1024, 256)).unwrap();
    let mag = golden("stft_mag.npy").map(|&v| v as f32);
    let y = griffin_lim(&stft, &mag, n, &cfg, &mut |_| {}).unwrap();
    let y: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let (rel, worst) = waveform_error(&y, &g);
    assert!(
        rel < 1e-2 && worst < 1e-2,
        "f32: relative L2 {rel}, worst sample {worst}"
    );
}

#[test]
fn resampled_stereo_44k_matches_mono_22k_content() {
    // The 44.1 kHz stereo fixture has identical channels; after mixdown and resampling to
    // 22.05 kHz it must be the same length as 1 s at 22.05 kHz and keep its energy.
    let a = decode_file(&fixtures().join("audio/stereo_44k.wav")).unwrap();
    assert_eq!((a.sample_rate, a.channels.len()), (44100, 2));
    let y = load_mono(&fixtures().join("audio/stereo_44k.wav"), 22050).unwrap();
    assert_eq!(y.len(), 22050);
    let e_in: f64 = a.channels[0]
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        / 44100.0;
    let e_out: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 22050.0;
    // Content above 11.025 kHz is removed; the fixture has little there.
    assert!(
        (e_out / e_in - 1.0).abs() < 0.02,
        "energy ratio {}",
        e_out / e_in
    );
}

/// Reads `"key": number` from a flat JSON object (the golden meta file).
fn json_number(text: &str, key: &str) -> f64 {
    let at = text.find(&format!("\"{key}\"")).expect("key present") + key.len() + 2;
    let rest = text[at..].trim_start().trim_start_matches(':').trim_start();
    let end = rest.find([',', '\n', '}']).unwrap();
    rest[..end].trim().parse().unwrap()
}
