//! The diffusion transformer over log-mel patches (Peebles & Xie, "Scalable Diffusion Models
//! with Transformers", ICCV 2023): adaLN-zero blocks driven by the noise level, with a
//! cross-attention layer to the conditioning sequence in each block as PixArt-alpha does
//! (Chen et al. 2023), and the in-painting input of JEN-1 / Stable Audio's inpainting model:
//! every token sees its noisy patch, the known patch times the mask, and the mask.
//!
//! Block (all shapes `[B, N, d]`, modulations `[B, 1, d]` from the global conditioning `c`):
//! ```text
//! x = x + g1 * SelfAttn(LN(x) * (1 + s1) + b1)      (RoPE on q, k when position is relative)
//! x = x + CrossAttn(LN(x), cond)                      (keys/values: the conditioning sequence)
//! x = x + g2 * MLP(LN(x) * (1 + s2) + b2)
//! ```
//! `c = MLP(sinusoid(1000 t)) [+ Linear(sentence)]`; the modulation layers, the cross-attention
//! output and the final projection start at zero, so an untrained model predicts zeros and
//! every block starts as the identity.

use burn::module::{Param, ParamId};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::cond::{Conditioner, Conditioning};
use crate::config::{AbsoluteKind, DitConfig};
use crate::freq::{FreqStem, FreqTail};
use crate::position;

/// Width of the sinusoidal noise-level features (DiT's `frequency_embedding_size`).
const TIME_FEATURES: usize = 256;

fn linear(i: usize, o: usize, device: &Device) -> Linear {
    LinearConfig::new(i, o).init(device)
}

fn zero_linear(i: usize, o: usize, device: &Device) -> Linear {
    LinearConfig::new(i, o)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

fn layer_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(1e-6).init(device)
}

/// `x [B, N, d] * (1 + scale [B, 1, d]) + shift [B, 1, d]`.
fn modulate(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    x * (scale + 1.0) + shift
}

/// `[B, L, d]` -> `[B, H, L, d / H]`.
fn split_heads(t: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, l, d] = t.dims();
    t.reshape([b, l, heads, d / heads]).swap_dims(1, 2)
}

/// `[B, H, L, dh]` -> `[B, L, H * dh]`.
fn merge_heads(t: Tensor<4>) -> Tensor<3> {
    let [b, h, l, dh] = t.dims();
    t.swap_dims(1, 2).reshape([b, l, h * dh])
}

/// Multi-head self-attention over the audio tokens, with optional rotary positions.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub out: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl SelfAttention {
    /// `x [B, N, d]`, `rope` = `(cos, sin)` each `[N, dh]` -> `[B, N, d]`.
    fn forward(&self, x: Tensor<3>, rope: Option<&(Tensor<2>, Tensor<2>)>) -> Tensor<3> {
        let [_, _, d] = x.dims();
        let qkv = self.qkv.forward(x);
        let mut q = split_heads(qkv.clone().narrow(2, 0, d), self.heads);
        let mut k = split_heads(qkv.clone().narrow(2, d, d), self.heads);
        let v = split_heads(qkv.narrow(2, 2 * d, d), self.heads);
        if let Some((cos, sin)) = rope {
            q = position::apply_rope(q, cos, sin);
            k = position::apply_rope(k, cos, sin);
        }
        let ctx = attention(q, k, v, None, None, AttentionModuleOptions::default());
        self.out.forward(merge_heads(ctx))
    }
}

/// Multi-head cross-attention from audio tokens to the conditioning sequence.
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub q: Linear,
    pub kv: Linear,
    pub out: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl CrossAttention {
    /// `x [B, N, d]`, `cond [B, Lc, d]`, `masked [B, H, N, Lc]` (true = ignore) -> `[B, N, d]`.
    fn forward(&self, x: Tensor<3>, cond: Tensor<3>, masked: Tensor<4, Bool>) -> Tensor<3> {
        let [_, _, d] = x.dims();
        let q = split_heads(self.q.forward(x), self.heads);
        let kv = self.kv.forward(cond);
        let k = split_heads(kv.clone().narrow(2, 0, d), self.heads);
        let v = split_heads(kv.narrow(2, d, d), self.heads);
        let ctx = attention(
            q,
            k,
            v,
            Some(masked),
            None,
            AttentionModuleOptions::default(),
        );
        self.out.forward(merge_heads(ctx))
    }
}

/// The two-layer MLP with exact (erf) GELU; the tanh form is much slower on burn's CPU
/// backends (shared/DESIGN.md section 3).
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// One DiT block with cross-attention.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: SelfAttention,
    pub norm2: LayerNorm,
    pub cross: CrossAttention,
    pub norm3: LayerNorm,
    pub mlp: Mlp,
    /// `c [B, d]` -> six modulations `[B, 6 d]` (zero-initialised: adaLN-zero).
    pub ada: Linear,
}

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        c: Tensor<2>,
        cond: Tensor<3>,
        masked: Tensor<4, Bool>,
        rope: Option<&(Tensor<2>, Tensor<2>)>,
    ) -> Tensor<3> {
        let [b, d] = c.dims();
        // [B, 6d] -> six [B, 1, d]
        let m = self.ada.forward(silu(c)).reshape([b, 6, d]);
        let part = |i: usize| m.clone().narrow(1, i, 1);
        let (shift1, scale1, gate1) = (part(0), part(1), part(2));
        let (shift2, scale2, gate2) = (part(3), part(4), part(5));
        let h = modulate(self.norm1.forward(x.clone()), shift1, scale1);
        let x = x + self.attn.forward(h, rope) * gate1;
        let x = x.clone() + self.cross.forward(self.norm2.forward(x), cond, masked);
        let h = modulate(self.norm3.forward(x.clone()), shift2, scale2);
        x + self.mlp.forward(h) * gate2
    }
}

/// Noise level `t` in [0, 1] -> `[B, d]`: sinusoidal features of `1000 t` (DiT's
/// `TimestepEmbedder`) through a two-layer MLP.
#[derive(Module, Debug)]
pub struct TimeEmbedding {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl TimeEmbedding {
    fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        let feats = position::sinusoid_features(t.mul_scalar(1000.0), TIME_FEATURES);
        self.fc2.forward(silu(self.fc1.forward(feats)))
    }
}

/// The final adaLN-modulated norm and projection back to patch values: a linear projection
/// plus, with `head_hidden`, an MLP branch whose output starts at zero (so a model trained
/// without it can be continued with it, see `io::load_partial`).
#[derive(Module, Debug)]
pub struct FinalLayer {
    pub norm: LayerNorm,
    pub ada: Linear,
    pub proj: Linear,
    pub branch: Option<Mlp>,
}

/// The whole network: patch embedding, conditioning, blocks, output projection.
#[derive(Module, Debug)]
pub struct Dit {
    /// `[2 P M + 1] -> d`: noisy patch, known patch x mask, mask.
    pub patch_in: Linear,
    /// Learned absolute positions `[tokens, d]` (only with `absolute = "learned"`).
    pub pos_table: Option<Param<Tensor<2>>>,
    pub time: TimeEmbedding,
    pub cond: Conditioner,
    pub blocks: Vec<Block>,
    pub last: FinalLayer,
    /// Convolutions along the mel axis before and after the transformer (`freq_stem`,
    /// `freq_tail`).
    pub stem: Option<FreqStem>,
    pub tail: Option<FreqTail>,
    #[module(skip)]
    pub config: DitConfig,
}

impl DitConfig {
    /// A randomly initialised model (burn's default initialisers, zeros where adaLN-zero
    /// asks for them). Seed the device first for a reproducible initialisation.
    pub fn init(&self, device: &Device) -> Dit {
        let d = self.d_model;
        let pd = self.patch_dim();
        let pos_table =
            (self.position.absolute() && self.absolute == AbsoluteKind::Learned).then(|| {
                Param::initialized(
                    ParamId::new(),
                    Tensor::<2>::random(
                        [self.tokens(), d],
                        burn::tensor::Distribution::Normal(0.0, 0.02),
                        device,
                    ),
                )
            });
        Dit {
            patch_in: linear(2 * pd + 1, d, device),
            pos_table,
            time: TimeEmbedding {
                fc1: linear(TIME_FEATURES, d, device),
                fc2: linear(d, d, device),
            },
            cond: Conditioner::new(self, device),
            blocks: (0..self.depth)
                .map(|_| Block {
                    norm1: layer_norm(d, device),
                    attn: SelfAttention {
                        qkv: linear(d, 3 * d, device),
                        out: linear(d, d, device),
                        heads: self.heads,
                    },
                    norm2: layer_norm(d, device),
                    cross: CrossAttention {
                        q: linear(d, d, device),
                        kv: linear(d, 2 * d, device),
                        out: zero_linear(d, d, device),
                        heads: self.heads,
                    },
                    norm3: layer_norm(d, device),
                    mlp: Mlp {
                        fc1: linear(d, self.mlp_hidden(), device),
                        fc2: linear(self.mlp_hidden(), d, device),
                    },
                    ada: zero_linear(d, 6 * d, device),
                })
                .collect(),
            last: FinalLayer {
                norm: layer_norm(d, device),
                ada: zero_linear(d, 2 * d, device),
                proj: zero_linear(d, pd, device),
                branch: self.head_hidden.map(|h| Mlp {
                    fc1: linear(d, h, device),
                    fc2: zero_linear(h, pd, device),
                }),
            },
            stem: self
                .freq_stem
                .map(|c| FreqStem::new(self.patch_frames, self.n_mels, c, d, device)),
            tail: self
                .freq_tail
                .map(|c| FreqTail::new(self.patch_frames, c, device)),
            config: self.clone(),
        }
    }
}

/// One denoiser input: the noisy tokens, what is known of the clean ones, and the noise level.
#[derive(Debug, Clone)]
pub struct DitInput {
    /// Noisy patches `x_t` `[B, N, P M]`.
    pub noisy: Tensor<3>,
    /// Known clean patches times the mask `[B, N, P M]` (zeros where nothing is known).
    pub known: Tensor<3>,
    /// `[B, N, 1]`: 1 where the token is known (kept), 0 where it is generated.
    pub mask: Tensor<3>,
    /// Diffusion time in [0, 1] `[B]`.
    pub t: Tensor<1>,
}

impl Dit {
    /// The v-prediction `[B, N, P M]` for `input` under `cond`. `N` may be at most the
    /// configured number of tokens.
    pub fn forward(&self, input: DitInput, cond: &Conditioning) -> Tensor<3> {
        let [b, n, _] = input.noisy.dims();
        let device = input.noisy.device();
        let cfg = &self.config;
        // 1. Tokens: [B, N, 2 P M + 1] -> [B, N, d] (plus the stem along the bands), plus
        //    absolute positions.
        let stem = self.stem.as_ref().map(|s| {
            s.forward(
                input.noisy.clone(),
                input.known.clone(),
                input.mask.clone(),
                cfg.n_mels,
            )
        });
        let mut x = self
            .patch_in
            .forward(Tensor::cat(vec![input.noisy, input.known, input.mask], 2));
        if let Some(s) = stem {
            x = x + s;
        }
        if cfg.position.absolute() {
            let pos = match &self.pos_table {
                Some(table) => table.val().narrow(0, 0, n),
                None => position::sinusoidal_table(n, cfg.d_model, &device),
            };
            x = x + pos.unsqueeze_dim(0);
        }
        // 2. Global conditioning c [B, d] and the cross-attention memory [B, Lc, d].
        let mut c = self.time.forward(input.t);
        if let Some(pooled) = self.cond.pooled(cond) {
            c = c + pooled;
        }
        let (memory, memory_valid) = self.cond.sequence(cond);
        let lc = memory.dims()[1];
        let masked = memory_valid
            .bool_not()
            .reshape([b, 1, 1, lc])
            .expand([b, cfg.heads, n, lc]);
        let rope = cfg
            .position
            .relative()
            .then(|| position::rope_tables(n, cfg.d_model / cfg.heads, cfg.rope_theta, &device));
        // 3. Blocks.
        for block in &self.blocks {
            x = block.forward(x, c.clone(), memory.clone(), masked.clone(), rope.as_ref());
        }
        // 4. Final modulated norm and projection to patch values.
        let d = cfg.d_model;
        let m = self.last.ada.forward(silu(c)).reshape([b, 2, d]);
        let h = modulate(
            self.last.norm.forward(x),
            m.clone().narrow(1, 0, 1),
            m.narrow(1, 1, 1),
        );
        // [B, N, d] -> [B, N, P M], then the tail along the bands.
        let out = self.last.proj.forward(h.clone());
        let out = match &self.last.branch {
            Some(branch) => out + branch.forward(h),
            None => out,
        };
        match &self.tail {
            Some(tail) => tail.forward(out, cfg.n_mels),
            None => out,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::PositionEncoding;
    use crate::config::tests::tiny;
    use crate::{CondExample, Keep};

    /// Adds small noise to every parameter: adaLN-zero starts the gates, the cross-attention
    /// output and the final projection at zero, and the blocks would hide position effects.
    pub(crate) struct Jitter;
    impl burn::module::ModuleMapper for Jitter {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| {
                let noise = t.random_like(burn::tensor::Distribution::Normal(0.0, 0.1));
                t + noise
            })
        }
    }

    fn output(position: PositionEncoding, absolute: AbsoluteKind, device: &Device) -> Vec<f32> {
        let cfg = DitConfig {
            position,
            absolute,
            ..tiny()
        };
        output_of(&cfg, device)
    }

    /// The jittered model's output `[1, N, P M]` as a flat vector.
    fn output_of(cfg: &DitConfig, device: &Device) -> Vec<f32> {
        let cfg = cfg.clone();
        device.seed(5);
        let model = cfg.init(device).map(&mut Jitter);
        let (n, pd) = (cfg.tokens(), cfg.patch_dim());
        let noisy: Vec<f32> = (0..n * pd)
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let input = DitInput {
            noisy: Tensor::from_data(TensorData::new(noisy, [1, n, pd]), device),
            known: Tensor::zeros([1, n, pd], device),
            mask: Tensor::zeros([1, n, 1], device),
            t: Tensor::from_floats([0.4], device),
        };
        let cond = Conditioning::from_examples(
            &[CondExample {
                tokens: vec![0.2; 2 * cfg.text_dim],
                n_tokens: 2,
                sentence: vec![0.1; cfg.text_dim],
                genre: None,
                artist: None,
                seconds_start: 0.0,
                seconds_total: 8.0,
                controls: Default::default(),
                keep: Keep::ALL,
            }],
            &cfg,
            device,
        )
        .unwrap();
        let out = model.forward(input, &cond);
        assert_eq!(out.dims(), [1, n, pd]);
        out.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn every_position_encoding_runs_and_changes_the_output() {
        let device = Device::flex();
        let outs: Vec<Vec<f32>> = [
            (PositionEncoding::Absolute, AbsoluteKind::Sinusoidal),
            (PositionEncoding::Absolute, AbsoluteKind::Learned),
            (PositionEncoding::Relative, AbsoluteKind::Sinusoidal),
            (PositionEncoding::Both, AbsoluteKind::Sinusoidal),
        ]
        .into_iter()
        .map(|(p, a)| output(p, a, &device))
        .collect();
        for o in &outs {
            assert!(o.iter().all(|v| v.is_finite()));
            assert!(o.iter().any(|v| v.abs() > 1e-6));
        }
        for i in 0..outs.len() {
            for j in i + 1..outs.len() {
                assert_ne!(outs[i], outs[j], "modes {i} and {j} gave the same output");
            }
        }
        // A model without learned positions has no position table to save.
        let cfg = DitConfig {
            position: PositionEncoding::Relative,
            ..tiny()
        };
        assert!(cfg.init(&device).pos_table.is_none());
    }

    /// Numerical rank of the rows (Gram-Schmidt in f64 with a relative tolerance).
    fn rank(rows: &[&[f32]]) -> usize {
        let mut basis: Vec<Vec<f64>> = Vec::new();
        let scale = rows
            .iter()
            .flat_map(|r| r.iter())
            .fold(0.0f64, |m, &v| m.max(v.abs() as f64));
        for r in rows {
            let mut v: Vec<f64> = r.iter().map(|&x| x as f64).collect();
            for b in &basis {
                let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-4 * scale {
                basis.push(v.into_iter().map(|x| x / norm).collect());
            }
        }
        basis.len()
    }

    #[test]
    fn the_head_branch_reaches_every_token_value() {
        // d 8 < P M 16: the linear head's outputs lie in an 8-dimensional subspace; the branch
        // (its zero output layer jittered like every other weight) lifts them to all 16.
        let device = Device::flex();
        let narrow = DitConfig {
            d_model: 8,
            frames: 64,
            ..tiny()
        };
        let pd = narrow.patch_dim();
        let tokens = |out: &[f32]| rank(&out.chunks(pd).collect::<Vec<_>>());
        assert_eq!(tokens(&output_of(&narrow, &device)), 8);
        let wide = DitConfig {
            head_hidden: Some(16),
            ..narrow
        };
        assert_eq!(wide.output_rank(), pd);
        assert_eq!(tokens(&output_of(&wide, &device)), pd);
    }
}
