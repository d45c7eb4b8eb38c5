//! Timing harness for `scripts/bench-dsp.sh` (not a test): on one WAV file, times the log-mel
//! spectrogram and 32-iteration fast Griffin-Lim exactly as the CLI computes them, writes the
//! outputs for comparison with librosa, and prints the timings as JSON.
//!
//! Usage: bench_dsp IN.wav OUT_DIR [REPEATS]

use std::path::PathBuf;
use std::time::Instant;

use musicdiff_dsp::Matrix;
use musicdiff_dsp::audio::{WavFormat, decode_file, write_wav};
use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
use musicdiff_dsp::griffin_lim::{GriffinLimConfig, PhaseInit, griffin_lim};
use musicdiff_dsp::npy;
use musicdiff_dsp::stft::Stft;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: bench_dsp IN.wav OUT_DIR [REPEATS]".into());
    }
    let input = PathBuf::from(&args[1]);
    let out_dir = PathBuf::from(&args[2]);
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let audio = decode_file(&input)?;
    let x = audio.channels[0].clone();
    let cfg = SpectrogramConfig {
        sample_rate: audio.sample_rate,
        ..Default::default()
    };

    // (a) log-mel, including filterbank construction and FFT planning, as librosa does per call.
    let mut times = Vec::new();
    let mut log_mel = Matrix::zeros(0, 0);
    for _ in 0..repeats {
        let t = Instant::now();
        let ex = LogMelExtractor::new(cfg)?;
        log_mel = ex.log_mel(&x);
        times.push(t.elapsed().as_secs_f64());
    }
    let logmel_s = median(times);
    npy::write_f32_matrix(&out_dir.join("rust_logmel.npy"), &log_mel)?;

    // (b) 32 iterations of fast Griffin-Lim on the clip's true STFT magnitude, zero initial
    // phase so that the output can be compared with librosa's sample by sample.
    let stft = Stft::<f32>::new(cfg.stft())?;
    let spec = stft.forward(&x);
    let mag = spec.magnitude();
    let gl = GriffinLimConfig {
        n_iter: 32,
        momentum: 0.99,
        init: PhaseInit::Zero,
    };
    let mut times = Vec::new();
    let mut y = Vec::new();
    for _ in 0..repeats.div_ceil(2).max(1) {
        let t = Instant::now();
        let stft = Stft::<f32>::new(cfg.stft())?;
        y = griffin_lim(&stft, &mag, x.len(), &gl, &mut |_| {})?;
        times.push(t.elapsed().as_secs_f64());
    }
    let gl_s = median(times);
    write_wav(
        &out_dir.join("rust_gl.wav"),
        &y,
        audio.sample_rate,
        WavFormat::Float32,
    )?;

    println!(
        "{{\"logmel_s\": {logmel_s}, \"griffinlim32_s\": {gl_s}, \"threads\": {}, \"seconds\": {}}}",
        rayon::current_num_threads(),
        x.len() as f64 / audio.sample_rate as f64
    );
    Ok(())
}
