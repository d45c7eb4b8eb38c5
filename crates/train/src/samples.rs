//! Preview samples during training: the configured prompts rendered with the EMA weights
//! (DDIM, classifier-free guidance, fixed noise per prompt so successive previews differ
//! only by training), written as `NN-prompt.wav` + `.png` under `RUN/samples/step-N/`.

use std::path::Path;

use burn::prelude::*;
use musicdiff_data::rng::Rng;
use musicdiff_diffusion::sampler;
use musicdiff_diffusion::schedule::CosineSchedule;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::features::SpectrogramConfig;
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_model::patch::unpatchify;
use musicdiff_model::{CondExample, Conditioning, Dit, Keep};
use musicdiff_pipeline::audio::{Normaliser, log_mel_to_audio};
use musicdiff_pipeline::denoise::GuidedDenoiser;
use musicdiff_text::TextEncoder;

use crate::checkpoint::TrainState;
use crate::error::{Result, TrainError};

/// A file-name-safe short form of a prompt.
fn slug(prompt: &str) -> String {
    let s: String = prompt
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s: Vec<&str> = s.split('-').filter(|p| !p.is_empty()).collect();
    s.join("-").chars().take(48).collect()
}

/// Renders every sample prompt of the run's configuration into `dir`.
pub fn render(
    model: &Dit,
    state: &TrainState,
    encoder: &TextEncoder,
    dir: &Path,
    device: &Device,
) -> Result<()> {
    let cfg = &state.config;
    let m = &cfg.model;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let spec = SpectrogramConfig {
        sample_rate: state.data.sample_rate,
        n_fft: state.data.n_fft,
        hop_length: state.data.hop_length,
        n_mels: state.data.n_mels,
        ..Default::default()
    };
    let norm = Normaliser {
        mean: state.data.mel_mean.clone(),
        std: state.data.mel_std.clone(),
    };
    let seconds = m.frames as f32 * spec.hop_length as f32 / spec.sample_rate as f32;
    let (n, d) = (m.tokens(), m.patch_dim());
    for (i, prompt) in cfg.run.sample_prompts.iter().enumerate() {
        let enc = encoder.encode(&[prompt.as_str()])?;
        let [_, l, dim] = enc.tokens.dims();
        let cond = Conditioning::from_examples(
            &[CondExample {
                tokens: enc
                    .tokens
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 data"),
                n_tokens: l,
                sentence: enc
                    .sentence
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 data"),
                genre: None,
                artist: None,
                seconds_start: 0.0,
                seconds_total: seconds,
                keep: Keep::ALL,
            }],
            m,
            device,
        )?;
        debug_assert_eq!(dim, m.text_dim);
        let mut rng = Rng::for_item(cfg.run.seed ^ 0x5A3E, i as u64);
        let noise: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let mut denoiser = GuidedDenoiser::new(
            model,
            &cond,
            vec![0.0; n * d],
            vec![0.0; n],
            [1, n, d],
            cfg.run.sample_guidance,
            device,
        );
        let tokens = sampler::ddim(
            &mut denoiser,
            &CosineSchedule::default(),
            noise,
            cfg.run.sample_steps,
            &mut |_| {},
        );
        let mel = norm.denormalise(&unpatchify(&tokens, m.n_mels, m.patch_frames));
        let wave = log_mel_to_audio(&spec, &mel, 32, i as u64)?;
        let stem = format!("{i:02}-{}", slug(prompt));
        audio::write_wav(
            &dir.join(format!("{stem}.wav")),
            &wave,
            spec.sample_rate,
            WavFormat::Pcm16,
        )?;
        image::write_png(
            &dir.join(format!("{stem}.png")),
            &mel,
            &ImageOptions::default(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(
            super::slug("Slow bossa nova, A minor, 90 bpm!"),
            "slow-bossa-nova-a-minor-90-bpm"
        );
    }
}
