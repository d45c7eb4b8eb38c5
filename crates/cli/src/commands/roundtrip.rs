//! `musicdiff roundtrip`: audio -> log-mel -> audio through the same path generated
//! spectrograms take (the neural vocoder, or mel -> linear by NNLS then fast Griffin-Lim),
//! reporting spectral convergence, log-spectral distance and the time of every stage. It
//! measures how much the spectrogram representation and its conversion lose, the ceiling for
//! any model built on them.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use musicdiff_common::atomic::OutputSet;
use musicdiff_common::error::WriteError;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_dsp::griffin_lim::{self, GriffinLimConfig, PhaseInit};
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_dsp::metrics::{log_spectral_distance, spectral_convergence};
use musicdiff_dsp::stft::Stft;

use crate::args::{LOG_MEL_DEFINITION, SpectrogramArgs};
use crate::progress::Ui;

/// Audio -> log-mel -> audio (vocoder or Griffin-Lim), reporting how close the result is.
#[derive(Debug, Args)]
#[command(after_long_help = LOG_MEL_DEFINITION)]
pub struct RoundtripCmd {
    /// Input audio: WAV, FLAC, MP3 or Ogg Vorbis, any sample rate and channel count.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output WAV file (mono, at --sr).
    #[arg(short, long, value_name = "OUT.wav")]
    pub output: PathBuf,
    /// Log-mel -> waveform: a vocoder directory or `griffin-lim` [default: $MUSICDIFF_VOCODER,
    /// else the bundled models/vocoder, else Griffin-Lim]. A vocoder reads its own log-mel:
    /// the spectrogram flags must then match it.
    #[arg(long, value_name = "DIR|griffin-lim")]
    pub vocoder: Option<super::VocoderChoice>,
    /// Griffin-Lim iterations.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub iters: usize,
    /// Fast Griffin-Lim momentum (0 gives the original algorithm).
    #[arg(long, value_name = "A", default_value_t = 0.99)]
    pub momentum: f32,
    /// Seed of the random initial phases.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Start from zero phases instead of random ones (librosa's init=None).
    #[arg(long, conflicts_with = "pghi")]
    pub zero_phase: bool,
    /// Start from phases integrated from the magnitude's gradients (PGHI, Průša et al. 2017)
    /// instead of random ones: nearly consistent before the first iteration.
    #[arg(long)]
    pub pghi: bool,
    /// Write 32-bit float samples instead of 16-bit PCM.
    #[arg(long)]
    pub float: bool,
    /// Also write the spectrogram picture of the reconstructed audio.
    #[arg(long, value_name = "OUT.png")]
    pub png: Option<PathBuf>,
    #[command(flatten)]
    pub spec: SpectrogramArgs,
}

pub fn run(cmd: RoundtripCmd, ui: &Ui) -> anyhow::Result<()> {
    let gl = GriffinLimConfig {
        n_iter: cmd.iters,
        momentum: cmd.momentum,
        init: if cmd.zero_phase {
            PhaseInit::Zero
        } else if cmd.pghi {
            PhaseInit::Pghi
        } else {
            PhaseInit::Random { seed: cmd.seed }
        },
    };
    gl.validate()?;
    // Refused before the vocoder's note or any loading: an output nowhere to go.
    WriteError::check_parent(&cmd.output)?;
    if let Some(png) = &cmd.png {
        WriteError::check_parent(png)?;
    }
    let vocoder = super::load_vocoder(cmd.vocoder.as_ref(), ui)?;
    let extractor = LogMelExtractor::new(cmd.spec.config())?;
    let cfg = *extractor.config();
    if let Some(v) = &vocoder
        && v.config().spectrogram() != cfg
    {
        let c = v.config();
        anyhow::bail!(musicdiff_vocoder::VocoderError::BadInput(format!(
            "vocoder `{}` reads {} mels at {} Hz (n_fft {}, hop {}); drop the spectrogram flags or pass --vocoder griffin-lim",
            v.id(),
            c.n_mels,
            c.sample_rate,
            c.n_fft,
            c.hop_length
        )));
    }
    super::warn_empty_filters(&extractor, ui);
    let total = Instant::now();

    let t = Instant::now();
    let loaded = super::load(&cmd.input, cfg.sample_rate, ui)?;
    let t_load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let log_mel = extractor.log_mel(&loaded.mono);
    let t_mel = t.elapsed().as_secs_f64();

    let stft = Stft::<f32>::new(cfg.stft())?;
    let (out, stages) = match &vocoder {
        Some(v) => {
            let t = Instant::now();
            let sp = ui.spinner("vocoding");
            let (out, s) = v.synthesise_timed(&log_mel, Some(loaded.mono.len()))?;
            sp.finish_and_clear();
            let t_voc = t.elapsed().as_secs_f64();
            (
                out,
                format!(
                    "vocoder {} {t_voc:.3} s (network {:.3} s, mel fit {:.3} s, phase {:.3} s, \
                     inverse {:.3} s)",
                    v.id(),
                    s.network,
                    s.mel_fit,
                    s.phase,
                    s.inverse
                ),
            )
        }
        None => {
            let t = Instant::now();
            let linear = griffin_lim::log_mel_to_magnitude(&cfg, extractor.filterbank(), &log_mel)?;
            let t_inv = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let bar = ui.bar(gl.n_iter as u64, "griffin-lim");
            let out = griffin_lim::griffin_lim(&stft, &linear, loaded.mono.len(), &gl, &mut |i| {
                bar.set_position(i as u64)
            })?;
            bar.finish_and_clear();
            let t_gl = t.elapsed().as_secs_f64();
            (
                out,
                format!(
                    "mel->linear {t_inv:.3} s | griffin-lim ({} it) {t_gl:.3} s",
                    gl.n_iter
                ),
            )
        }
    };

    let t = Instant::now();
    let format = if cmd.float {
        WavFormat::Float32
    } else {
        WavFormat::Pcm16
    };
    // The WAV and its picture appear together or not at all.
    let mut set = OutputSet::new();
    audio::stage_wav(&mut set, &cmd.output, &out, cfg.sample_rate, format)?;
    if let Some(png) = &cmd.png {
        image::stage_png(
            &mut set,
            png,
            &extractor.log_mel(&out),
            &ImageOptions::default(),
        )?;
    }
    set.commit()?;
    let t_write = t.elapsed().as_secs_f64();
    let t_total = total.elapsed().as_secs_f64();

    let reference = stft.forward(&loaded.mono).magnitude();
    let estimate = stft.forward(&out).magnitude();
    let seconds = loaded.mono.len() as f64 / cfg.sample_rate as f64;
    println!(
        "input                  {}: {:.2} s, {} Hz, {} channel(s)",
        cmd.input.display(),
        loaded.original.seconds(),
        loaded.original.sample_rate,
        loaded.original.channels.len()
    );
    println!(
        "log-mel                {} mels x {} frames at {} Hz (n_fft {}, hop {})",
        log_mel.rows(),
        log_mel.cols(),
        cfg.sample_rate,
        cfg.n_fft,
        cfg.hop_length
    );
    println!(
        "spectral convergence   {:.4}",
        spectral_convergence(&reference, &estimate)
    );
    println!(
        "log-spectral distance  {:.3} dB",
        log_spectral_distance(&reference, &estimate)
    );
    println!(
        "time                   decode+resample {t_load:.3} s | log-mel {t_mel:.3} s | {stages} | write {t_write:.3} s"
    );
    println!(
        "total                  {t_total:.3} s for {seconds:.2} s of audio (real-time factor {:.3})",
        t_total / seconds.max(1e-9)
    );
    println!("output                 {}", cmd.output.display());
    Ok(())
}
