//! Preview samples during training: the configured prompts rendered with the EMA weights
//! through the same [`musicdiff_pipeline::generator::run_with`] that `musicdiff generate` uses
//! (DDIM, classifier-free guidance, one model window, a fixed seed per prompt so successive
//! previews differ only by training), written as `NN-prompt.wav` + `.png` under
//! `RUN/samples/step-N/`.

use std::path::Path;

use burn::prelude::*;
use musicdiff_diffusion::sampler::SamplerKind;
use musicdiff_dsp::audio::{self, WavFormat};
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_model::Dit;
use musicdiff_pipeline::Guidance;
use musicdiff_pipeline::generator::{Request, Task, run_with};
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
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let seconds = (cfg.model.frames - 1) as f64 * state.data.frame_seconds();
    for (i, prompt) in cfg.run.sample_prompts.iter().enumerate() {
        let req = Request {
            task: Task::Generate {
                seconds: seconds as f32,
            },
            prompt: prompt.clone(),
            genre: None,
            artist: None,
            controls: musicdiff_dsp::controls::Controls::from_prompt(prompt),
            seed: cfg.run.seed ^ (0x5A3E + i as u64),
            steps: cfg.run.sample_steps,
            sampler: SamplerKind::Ddim,
            guidance: Guidance::new(cfg.run.sample_guidance),
            overlap_seconds: 0.0,
            griffin_lim_iters: 32,
        };
        let out = run_with(model, encoder, &state.data, &req, None, device, &mut |_| {})?;
        let stem = format!("{i:02}-{}", slug(prompt));
        audio::write_wav(
            &dir.join(format!("{stem}.wav")),
            &out.audio,
            out.sample_rate,
            WavFormat::Pcm16,
        )?;
        image::write_png(
            &dir.join(format!("{stem}.png")),
            &out.log_mel,
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
