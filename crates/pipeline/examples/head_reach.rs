//! Diagnostic: how much of a model's output lies outside the span of its linear output
//! projection, and whether that part is the model's or the sampler's noise left behind.
//!
//! The DiT's last layer maps a `d_model`-wide state to the `P M` values of a token. Its linear
//! projection `W: [d, P M]` reaches only the row space of `W` (plus the bias); with
//! `d < P M` every output also has a part in the orthogonal complement, which only the
//! optional MLP branch of the head (`DitConfig::head_hidden`) can set. This program samples
//! one window from a prompt exactly as `musicdiff generate` does (same seed, same noise) and
//! reports, over all tokens:
//! 1. `share`: the fraction of the output's energy (bias removed) in that complement;
//! 2. `noise corr`: the correlation between the output's complement part and the initial
//!    noise's. Near 1 means the complement is untouched noise (a head that cannot reach it);
//!    near 0 means the model sets it.
//!
//! With `--audio FILE`, the same share for real music (the file's log-mel, normalised with the
//! model's statistics), for comparison.
//!
//! Usage: `cargo run --release -p musicdiff-pipeline --example head_reach -- MODEL_DIR
//! "PROMPT" [SEED] [--audio FILE]`

use std::path::PathBuf;

use burn::prelude::*;
use musicdiff_diffusion::sampler::{self, SamplerKind};
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_model::patch::patchify;
use musicdiff_model::{CondExample, Conditioning, Keep};
use musicdiff_pipeline::denoise::{Guidance, GuidedDenoiser};
use musicdiff_pipeline::generator::window_noise;
use musicdiff_pipeline::model_dir;
use musicdiff_text::TextEncoder;

/// Orthonormal basis (Gram-Schmidt, f64) of the span of `rows`.
fn basis(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    for r in rows {
        // Twice, for numerical orthogonality.
        let v = complement(&complement(r, &out), &out);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-8 {
            out.push(v.into_iter().map(|x| x / norm).collect());
        }
    }
    out
}

/// The part of `v` orthogonal to the span of `basis`.
fn complement(v: &[f64], basis: &[Vec<f64>]) -> Vec<f64> {
    let mut r = v.to_vec();
    for b in basis {
        let dot: f64 = r.iter().zip(b).map(|(x, y)| x * y).sum();
        r.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
    }
    r
}

/// Share of the energy of `tokens` (`[n, pd]`, bias removed) outside the span of `basis`, and
/// the complement parts themselves.
fn outside(tokens: &[f32], bias: &[f64], basis: &[Vec<f64>]) -> (f64, Vec<f64>) {
    let pd = bias.len();
    let (mut total, mut out, mut parts) = (0.0, 0.0, Vec::new());
    for t in tokens.chunks(pd) {
        let v: Vec<f64> = t.iter().zip(bias).map(|(&x, b)| x as f64 - b).collect();
        let r = complement(&v, basis);
        total += v.iter().map(|x| x * x).sum::<f64>();
        out += r.iter().map(|x| x * x).sum::<f64>();
        parts.extend(r);
    }
    (out / total.max(1e-30), parts)
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let audio = args.iter().position(|a| a == "--audio").map(|i| {
        let p = PathBuf::from(args.get(i + 1).cloned().unwrap_or_default());
        args.drain(i..(i + 2).min(args.len()));
        p
    });
    let (Some(dir), Some(prompt)) = (args.first(), args.get(1)) else {
        return Err("usage: head_reach MODEL_DIR PROMPT [SEED] [--audio FILE]".into());
    };
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let dir = PathBuf::from(dir);
    let device = Device::flex();
    let meta = model_dir::read_meta(&dir)?;
    let model = model_dir::load_weights(&dir, &meta, &device)?;
    let cfg = &meta.model;
    let (n, pd) = (cfg.tokens(), cfg.patch_dim());

    // The linear projection's reach: rows of W [d, pd] and its bias.
    let w: Vec<f32> = model.last.proj.weight.val().into_data().try_to_vec()?;
    let rows: Vec<Vec<f64>> = w
        .chunks(pd)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect();
    let bias: Vec<f64> = match &model.last.proj.bias {
        Some(b) => b.val().into_data().try_to_vec::<f32>()?,
        None => vec![0.0; pd],
    }
    .into_iter()
    .map(f64::from)
    .collect();
    let reach = basis(&rows);
    println!(
        "{}: d_model {}, P M {}, linear head reaches {} dimensions, branch {}",
        meta.id,
        cfg.d_model,
        pd,
        reach.len(),
        cfg.head_hidden
            .map_or("none".to_string(), |h| format!("{h} wide"))
    );

    // One window sampled as the generator samples it: seed's noise, default sampler settings.
    let encoder = TextEncoder::load(&musicdiff_common::assets::minilm()?, &device)?;
    let enc = encoder.encode(&[prompt.as_str()])?;
    let n_text = enc.tokens.dims()[1];
    let cond = Conditioning::from_examples(
        &[CondExample {
            tokens: enc.tokens.into_data().try_to_vec()?,
            n_tokens: n_text,
            sentence: enc.sentence.into_data().try_to_vec()?,
            genre: None,
            artist: None,
            seconds_start: 0.0,
            seconds_total: (cfg.frames as f64 * meta.data.frame_seconds()) as f32,
            controls: Default::default(),
            keep: Keep::ALL,
        }],
        cfg,
        &device,
    )?;
    let noise = window_noise(seed, 0, n * pd);
    let mut denoiser = GuidedDenoiser::new(
        &model,
        &cond,
        vec![0.0; n * pd],
        vec![0.0; n],
        [1, n, pd],
        Guidance::new(meta.sampling.cfg),
        &device,
    );
    let kind: SamplerKind = meta.sampling.sampler;
    let schedule = denoiser.objective.schedule;
    let out = sampler::sample(
        kind,
        &mut denoiser,
        &schedule,
        noise.clone(),
        meta.sampling.steps,
        &mut |_, _| {},
    );
    // What the network sees of the noisy tokens: the span of the columns of the noisy part of
    // patch_in's weight ([2 P M + 1, d], noisy rows first).
    let w_in: Vec<f32> = model.patch_in.weight.val().into_data().try_to_vec()?;
    let d = cfg.d_model;
    let seen: Vec<Vec<f64>> = (0..d)
        .map(|j| (0..pd).map(|i| w_in[i * d + j] as f64).collect())
        .collect();
    let seen = basis(&seen);
    let zero = vec![0.0; pd];
    let (blind_share, blind_part) = outside(&out, &zero, &seen);
    let (_, blind_noise) = outside(&noise, &zero, &seen);
    println!(
        "input: the patch embedding sees {} of the {pd} noisy values' dimensions; generated share in the unseen ones {:.3}, noise corr there {:.3}",
        seen.len(),
        blind_share,
        correlation(&blind_part, &blind_noise)
    );
    let (share, part) = outside(&out, &bias, &reach);
    let (_, noise_part) = outside(&noise, &zero, &reach);
    println!(
        "generated ({kind}, {} steps, cfg {}, seed {seed}): share outside {:.3}, noise corr {:.3}",
        meta.sampling.steps,
        meta.sampling.cfg,
        share,
        correlation(&part, &noise_part)
    );

    if let Some(path) = audio {
        let wave = musicdiff_dsp::audio::load_mono(&path, meta.data.sample_rate as u32)?;
        let extractor = LogMelExtractor::new(meta.data.spectrogram())?;
        let lm = extractor.log_mel(&wave); // [n_mels, frames]
        let frames = lm.cols() - lm.cols() % cfg.patch_frames;
        let mut mel = vec![0.0f32; cfg.n_mels * frames];
        for m in 0..cfg.n_mels {
            mel[m * frames..(m + 1) * frames].copy_from_slice(&lm.row(m)[..frames]);
        }
        meta.data.normaliser().normalise(&mut mel);
        let tokens = patchify(&mel, cfg.n_mels, cfg.patch_frames);
        let (share, _) = outside(&tokens, &bias, &reach);
        println!("real audio {}: share outside {share:.3}", path.display());
    }
    Ok(())
}
