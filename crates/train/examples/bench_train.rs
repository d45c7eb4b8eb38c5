//! The Rust side of `scripts/bench-train.sh`: times full training steps (forward, masked v-loss,
//! backward, AdamW with clipping, EMA update) and inference forwards of the model a training
//! config describes, on synthetic batches of the configured shapes (20 caption tokens, genre
//! and artist present). Prints one JSON object per measurement for `bench/bench_train.py`.
//!
//! `bench_train CONFIG.toml [--steps N] [--warmup N]`

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use musicdiff_model::{CondExample, Conditioning, DitInput, Keep};
use musicdiff_train::TrainConfig;
use musicdiff_train::batch::{StepBatch, loss};
use musicdiff_train::optim::{AdamW, detached_copy, ema_update};

fn synthetic(cfg: &TrainConfig, b: usize, device: &Device) -> StepBatch {
    let m = &cfg.model;
    let (n, d) = (m.tokens(), m.patch_dim());
    let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
    let ex = CondExample {
        tokens: (0..20 * m.text_dim)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect(),
        n_tokens: 20,
        sentence: vec![0.05; m.text_dim],
        genre: Some(vec![0.05; m.text_dim]),
        artist: Some(vec![-0.05; m.text_dim]),
        seconds_start: 0.0,
        seconds_total: 30.0,
        controls: Default::default(),
        keep: Keep::ALL,
    };
    // Half the tokens known (a prefix), as continuation batches have.
    let mask: Vec<f32> = (0..b * n)
        .map(|i| if i % n < n / 2 { 1.0 } else { 0.0 })
        .collect();
    let generate: Vec<f32> = mask.iter().map(|m| 1.0 - m).collect();
    StepBatch {
        input: DitInput {
            noisy: Tensor::random([b, n, d], dist, device),
            known: Tensor::random([b, n, d], dist, device),
            mask: Tensor::from_data(TensorData::new(mask, [b, n, 1]), device),
            t: Tensor::random([b], burn::tensor::Distribution::Uniform(0.0, 1.0), device),
        },
        cond: Conditioning::from_examples(&vec![ex; b], m, device).expect("shapes"),
        target: Tensor::random([b, n, d], dist, device),
        generate: Tensor::from_data(TensorData::new(generate, [b, n]), device),
        weight: Tensor::ones([b], device),
        kinds: vec![],
        times: vec![0.5; b],
        crop_offsets: vec![0; b],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: bench_train CONFIG.toml [--steps N] [--warmup N]");
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (steps, warmup) = (flag("--steps", 5), flag("--warmup", 2));
    let cfg = TrainConfig::load(path.as_ref()).expect("config");
    let b = cfg.optim.batch_size;

    // Training steps on the autodiff device.
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = cfg.model.init(&device);
    let plain = Device::flex();
    let mut ema = detached_copy(&model, &plain);
    let mut opt = AdamW::new(&cfg.optim);
    let batch = synthetic(&cfg, b, &device);
    let mut times = Vec::new();
    for i in 0..warmup + steps {
        let t = Instant::now();
        let l = loss(model.forward(batch.input.clone(), &batch.cond), &batch);
        let _ = l.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = opt.step(model, grads, cfg.optim.lr).0;
        ema = ema_update(ema, &model, 0.999);
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{{\"what\": \"train_step\", \"batch\": {b}, \"tokens\": {}, \"params\": {}, \"seconds\": {:?}}}",
        cfg.model.tokens(),
        model.num_params(),
        times
    );

    // Inference forwards on the plain device: batch 2, a conditional and an unconditional row
    // (one sampling step with classifier-free guidance).
    let batch = synthetic(&cfg, 2, &plain);
    let mut times = Vec::new();
    for i in 0..warmup + steps {
        let t = Instant::now();
        let out = ema.forward(batch.input.clone(), &batch.cond);
        let _ = out.into_data();
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{{\"what\": \"forward_b2\", \"batch\": 2, \"tokens\": {}, \"seconds\": {:?}}}",
        cfg.model.tokens(),
        times
    );
}
