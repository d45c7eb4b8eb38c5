//! Times the DiT's forward pass (plain device) and forward + backward (autodiff device) for a
//! configuration given on the command line, to size models for a 2-core CPU:
//! `cargo run --release -p musicdiff-model --example speed -- D DEPTH HEADS P FRAMES BATCH`.

use std::time::Instant;

use burn::prelude::*;
use musicdiff_model::*;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("numbers"))
        .collect();
    let [d, depth, heads, p, frames, batch] = a[..] else {
        panic!("usage: speed D DEPTH HEADS P FRAMES BATCH")
    };
    let cfg = DitConfig {
        n_mels: 80,
        patch_frames: p,
        frames,
        d_model: d,
        depth,
        heads,
        mlp_ratio: 4.0,
        text_dim: 384,
        max_text_tokens: 48,
        position: PositionEncoding::Both,
        absolute: AbsoluteKind::Sinusoidal,
        rope_theta: 10000.0,
        max_seconds: 60.0,
        pooled_text: true,
    };
    for (name, device) in [
        ("forward", Device::flex()),
        ("fwd+bwd", Device::flex().autodiff()),
    ] {
        let model = cfg.init(&device);
        let (n, pd) = (cfg.tokens(), cfg.patch_dim());
        let ex = CondExample {
            tokens: vec![0.1; 20 * 384],
            n_tokens: 20,
            sentence: vec![0.1; 384],
            genre: Some(vec![0.1; 384]),
            artist: None,
            seconds_start: 0.0,
            seconds_total: 30.0,
            keep: Keep::ALL,
        };
        let cond = Conditioning::from_examples(&vec![ex; batch], &cfg, &device).unwrap();
        let mut times = Vec::new();
        for _ in 0..4 {
            let input = DitInput {
                noisy: Tensor::random([batch, n, pd], burn::tensor::Distribution::Default, &device),
                known: Tensor::zeros([batch, n, pd], &device),
                mask: Tensor::zeros([batch, n, 1], &device),
                t: Tensor::full([batch], 0.5, &device),
            };
            let t = Instant::now();
            let out = model.forward(input, &cond);
            if name == "forward" {
                let _ = out.into_data();
            } else {
                let g = out.powi_scalar(2).mean().backward();
                drop(g);
            }
            times.push(t.elapsed().as_secs_f64());
        }
        println!(
            "{name}: params {:.2} M, tokens {n}, batch {batch}: {:?}",
            model.num_params() as f64 / 1e6,
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
        );
    }
}
