//! How much a checkpoint uses its conditioning, per noise level: on held-out windows, the
//! full-task loss with every conditioning part kept and with all of them dropped (the same
//! examples, noise and times), grouped by the diffusion time `t`. A ratio `uncond / cond` of 1
//! means the prompt does not change the prediction. Classifier-free guidance (Ho & Salimans
//! 2022) can only steer where this ratio is above 1, so it says whether a model can follow
//! prompts before any audio is made.
//!
//! `cargo run --release -p musicdiff-train --example cond_gain -- DATA CHECKPOINT [--batches N]`
//!
//! CHECKPOINT is a checkpoint directory or a run directory (its latest checkpoint).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::{Loader, Split};
use musicdiff_diffusion::masks::MaskKind;
use musicdiff_model::io as weights;
use musicdiff_text::TextEncoder;
use musicdiff_train::batch::{self, FieldVectors};
use musicdiff_train::checkpoint;

/// Upper edges of the time buckets (`t` in [0, 1), 1 = pure noise).
const EDGES: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: cond_gain DATA CHECKPOINT [--batches N]";
    let data = PathBuf::from(args.first().ok_or(usage)?);
    let from = PathBuf::from(args.get(1).ok_or(usage)?);
    let batches = match args.iter().position(|a| a == "--batches") {
        Some(i) => args.get(i + 1).ok_or(usage)?.parse()?,
        None => 16,
    };
    let dir = if from.join(checkpoint::STATE).exists() {
        from
    } else {
        checkpoint::latest(&from)?.ok_or("no checkpoint there")?
    };
    let state = checkpoint::read_state(&dir)?;
    let device = Device::flex();
    let model = weights::load(&state.config.model, &dir.join(checkpoint::EMA), &device)?;
    let test = Loader::open(&data, Split::Test, state.config.optim.batch_size, 0)?;
    let encoder = TextEncoder::load(&musicdiff_common::assets::minilm()?, &device)?;
    let hop_seconds = state.data.hop_length as f64 / state.data.sample_rate as f64;

    let (keep_all, drop_all) = (
        state.config.for_evaluation(true),
        state.config.for_evaluation(false),
    );

    let mut fields = FieldVectors::default();
    // Per bucket: (sum of cond loss, sum of uncond loss, examples).
    let mut sums = [(0.0f64, 0.0f64, 0usize); EDGES.len()];
    let mut seen = 0;
    for (k, b) in test.epoch(0).take(batches).enumerate() {
        let b = b?;
        fields.add(&b, &encoder)?;
        let mut losses = Vec::new();
        for cfg in [&keep_all, &drop_all] {
            // The same generator state for both passes: the same crops, times and noise.
            let mut rng = Rng::for_item(0xC0DE, k as u64);
            let sb = batch::make(
                &b,
                cfg,
                &mut rng,
                &fields,
                hop_seconds,
                batch::Draw::task(MaskKind::Full),
                &device,
            )?;
            let t: Vec<f32> = sb.input.t.clone().into_data().try_to_vec::<f32>()?;
            let pred = model.forward(sb.input.clone(), &sb.cond);
            let l: Vec<f32> = batch::per_example_loss(pred, &sb)
                .into_data()
                .try_to_vec::<f32>()?;
            losses.push((t, l));
        }
        let ((t, cond), (_, uncond)) = (&losses[0], &losses[1]);
        for i in 0..t.len() {
            let bucket = EDGES.iter().position(|&e| (t[i] as f64) < e).unwrap_or(4);
            sums[bucket].0 += cond[i] as f64;
            sums[bucket].1 += uncond[i] as f64;
            sums[bucket].2 += 1;
        }
        seen += b.size;
    }
    report(&dir, seen, &sums);
    Ok(())
}

fn report(dir: &Path, seen: usize, sums: &[(f64, f64, usize)]) {
    println!("{} on {seen} held-out windows (full task)", dir.display());
    println!("t range      examples  loss cond  loss uncond  uncond/cond");
    let mut lo = 0.0;
    let (mut tc, mut tu) = (0.0, 0.0);
    for (k, &(c, u, n)) in sums.iter().enumerate() {
        tc += c;
        tu += u;
        if n > 0 {
            println!(
                "[{lo:.1}, {:.1})  {n:>8}  {:>9.5}  {:>11.5}  {:>11.3}",
                EDGES[k],
                c / n as f64,
                u / n as f64,
                u / c.max(1e-12)
            );
        }
        lo = EDGES[k];
    }
    println!(
        "all          {seen:>8}  {:>9.5}  {:>11.5}  {:>11.3}",
        tc / seen as f64,
        tu / seen as f64,
        tu / tc.max(1e-12)
    );
}
