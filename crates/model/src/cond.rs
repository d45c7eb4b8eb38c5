//! The conditioning sequence that the DiT cross-attends to, built as Jukebox (Dhariwal et al.
//! 2020: genre and artist embeddings) and Stable Audio (Evans et al., "Fast Timing-Conditioned
//! Latent Audio Diffusion", 2024: `seconds_start` and `seconds_total` as number embeddings)
//! do:
//!
//! ```text
//! [START] ++ Linear(MiniLM token states) ++ [genre] ++ [artist] ++ [seconds_start] ++ [seconds_total]
//!   1            L (caption tokens)           1          1              1                 1
//!         ++ [bpm] ++ [key] ++ [meter]        (models with `controls`)
//!              1        1         1
//! ```
//!
//! Genre and artist are MiniLM sentence vectors of the field strings, projected to the model
//! width. The musical controls (`musicdiff_dsp::controls`) are the tempo's Fourier features and
//! one-hot key and meter classes, each projected to the model width; they also join the pooled
//! global conditioning, so that tempo and key reach every block through adaLN. Each part (text,
//! genre, artist, timing, bpm, key, meter) can be replaced by a learned null embedding, per
//! example, through the `keep` flags: that is how training drops conditions for classifier-free
//! guidance (Ho & Salimans 2022) and how a missing field is expressed.

use burn::module::{Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use musicdiff_dsp::controls::{
    BPM_FEATURES, Controls, KEY_CLASSES, METER_CLASSES, bpm_features, key_class, number_features,
};

use crate::config::DitConfig;
use crate::error::{ModelError, Result};

/// Fourier frequencies of the timing features (multiples of 2 pi).
const TIMING_OCTAVES: usize = 8;
/// `[s, sin(2 pi 2^k s), cos(2 pi 2^k s)]` for `k < TIMING_OCTAVES`.
pub const TIMING_FEATURES: usize = 1 + 2 * TIMING_OCTAVES;

/// Which conditioning parts an example keeps (the others become learned nulls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub text: bool,
    pub genre: bool,
    pub artist: bool,
    pub timing: bool,
    pub bpm: bool,
    pub key: bool,
    pub meter: bool,
}

/// Conditioning parts with a keep flag: text, genre, artist, timing, bpm, key, meter.
pub const KEEP_PARTS: usize = 7;

impl Keep {
    pub const ALL: Keep = Keep {
        text: true,
        genre: true,
        artist: true,
        timing: true,
        bpm: true,
        key: true,
        meter: true,
    };
    pub const NONE: Keep = Keep {
        text: false,
        genre: false,
        artist: false,
        timing: false,
        bpm: false,
        key: false,
        meter: false,
    };

    fn as_floats(self) -> [f32; KEEP_PARTS] {
        [
            self.text,
            self.genre,
            self.artist,
            self.timing,
            self.bpm,
            self.key,
            self.meter,
        ]
        .map(|k| if k { 1.0 } else { 0.0 })
    }
}

/// Conditioning of one example as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct CondExample {
    /// Caption token states `[n_tokens, text_dim]` (real tokens only).
    pub tokens: Vec<f32>,
    pub n_tokens: usize,
    /// Caption sentence vector `[text_dim]`.
    pub sentence: Vec<f32>,
    /// Sentence vectors of the genre and artist fields, when present.
    pub genre: Option<Vec<f32>>,
    pub artist: Option<Vec<f32>>,
    pub seconds_start: f32,
    pub seconds_total: f32,
    /// What is known of the tempo, key and meter (read only by models with `controls`; an
    /// unknown one is its null, as a dropped one).
    pub controls: Controls,
    pub keep: Keep,
}

/// A batch of conditioning as tensors.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// `[B, L, text_dim]`, zero past each caption.
    pub text: Tensor<3>,
    /// `[B, L]`, true for real tokens (every row has at least one).
    pub text_valid: Tensor<2, Bool>,
    /// `[B, text_dim]`.
    pub sentence: Tensor<2>,
    /// `[B, text_dim]` each (zeros where the field is absent; `keep` then says 0).
    pub genre: Tensor<2>,
    pub artist: Tensor<2>,
    /// `[B, TIMING_FEATURES]` for `seconds_start` and `seconds_total`.
    pub start: Tensor<2>,
    pub total: Tensor<2>,
    /// `[B, BPM_FEATURES]` tempo features, `[B, KEY_CLASSES]` and `[B, METER_CLASSES]` one-hot
    /// (zeros where unknown; `keep` then says 0).
    pub bpm: Tensor<2>,
    pub key: Tensor<2>,
    pub meter: Tensor<2>,
    /// `[B, KEEP_PARTS]`: 1 keeps text, genre, artist, timing, bpm, key, meter; 0 swaps in the
    /// learned null.
    pub keep: Tensor<2>,
}

/// `[s, sin(2 pi 2^k s), cos(2 pi 2^k s)]` of `s = clamp(seconds / max, 0, 1)`.
pub fn timing_features(seconds: f32, max_seconds: f64) -> [f32; TIMING_FEATURES] {
    let s = (seconds as f64 / max_seconds).clamp(0.0, 1.0);
    let mut f = [0.0f32; TIMING_FEATURES];
    number_features(s, std::f64::consts::TAU, &mut f);
    f
}

impl Conditioning {
    /// Stacks examples into tensors; captions are cut at the model's `max_text_tokens` and
    /// padded to the longest. A caption with no tokens gets one zero token (then `keep.text`
    /// should be false).
    pub fn from_examples(
        examples: &[CondExample],
        cfg: &DitConfig,
        device: &Device,
    ) -> Result<Self> {
        let b = examples.len();
        if b == 0 {
            return Err(ModelError::Shape(
                "an empty batch has no conditioning".into(),
            ));
        }
        let dim = cfg.text_dim;
        let l = examples
            .iter()
            .map(|e| e.n_tokens.min(cfg.max_text_tokens))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut text = vec![0.0f32; b * l * dim];
        let mut valid = vec![false; b * l];
        let mut sentence = Vec::with_capacity(b * dim);
        let mut genre = vec![0.0f32; b * dim];
        let mut artist = vec![0.0f32; b * dim];
        let mut start = Vec::with_capacity(b * TIMING_FEATURES);
        let mut total = Vec::with_capacity(b * TIMING_FEATURES);
        let mut bpm = vec![0.0f32; b * BPM_FEATURES];
        let mut key = vec![0.0f32; b * KEY_CLASSES];
        let mut meter = vec![0.0f32; b * METER_CLASSES];
        let mut keep = Vec::with_capacity(b * KEEP_PARTS);
        for (i, e) in examples.iter().enumerate() {
            let check = |what: &str, got: usize, want: usize| {
                if got == want {
                    Ok(())
                } else {
                    Err(ModelError::Shape(format!(
                        "example {i}: {what} has {got} values, expected {want}"
                    )))
                }
            };
            check("tokens", e.tokens.len(), e.n_tokens * dim)?;
            check("sentence", e.sentence.len(), dim)?;
            let n = e.n_tokens.min(cfg.max_text_tokens);
            text[i * l * dim..(i * l + n) * dim].copy_from_slice(&e.tokens[..n * dim]);
            valid[i * l..i * l + n.max(1)].fill(true);
            sentence.extend_from_slice(&e.sentence);
            let mut k = e.keep;
            for (field, slot, flag) in [
                (&e.genre, &mut genre, &mut k.genre),
                (&e.artist, &mut artist, &mut k.artist),
            ] {
                match field {
                    Some(v) => {
                        check("field vector", v.len(), dim)?;
                        slot[i * dim..(i + 1) * dim].copy_from_slice(v);
                    }
                    None => *flag = false,
                }
            }
            if e.n_tokens == 0 {
                k.text = false;
            }
            start.extend(timing_features(e.seconds_start, cfg.max_seconds));
            total.extend(timing_features(e.seconds_total, cfg.max_seconds));
            match e.controls.bpm.filter(|v| v.is_finite() && *v > 0.0) {
                Some(v) => {
                    bpm[i * BPM_FEATURES..(i + 1) * BPM_FEATURES].copy_from_slice(&bpm_features(v))
                }
                None => k.bpm = false,
            }
            match e.controls.key {
                Some(v) => key[i * KEY_CLASSES + key_class(v)] = 1.0,
                None => k.key = false,
            }
            match e.controls.meter {
                Some(v) => meter[i * METER_CLASSES + v.class()] = 1.0,
                None => k.meter = false,
            }
            keep.extend(k.as_floats());
        }
        let t2 = |v: Vec<f32>, cols: usize| {
            Tensor::<2>::from_data(TensorData::new(v, [b, cols]), device)
        };
        Ok(Self {
            text: Tensor::from_data(TensorData::new(text, [b, l, dim]), device),
            text_valid: Tensor::from_data(TensorData::new(valid, [b, l]), device),
            sentence: t2(sentence, dim),
            genre: t2(genre, dim),
            artist: t2(artist, dim),
            start: t2(start, TIMING_FEATURES),
            total: t2(total, TIMING_FEATURES),
            bpm: t2(bpm, BPM_FEATURES),
            key: t2(key, KEY_CLASSES),
            meter: t2(meter, METER_CLASSES),
            keep: t2(keep, KEEP_PARTS),
        })
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.keep.dims()[0]
    }

    /// This batch twice: first as given, then with every part dropped (the unconditional half
    /// of classifier-free guidance, evaluated in the same forward pass).
    pub fn with_unconditional(&self) -> Self {
        self.with_variants(&[Keep::ALL, Keep::NONE])
    }

    /// This batch once per variant, stacked along the batch: copy `k` keeps only the parts
    /// that both the example and `variants[k]` keep. For guidance with several scales.
    pub fn with_variants(&self, variants: &[Keep]) -> Self {
        let n = variants.len();
        let rep2 = |a: &Tensor<2>| Tensor::cat(vec![a.clone(); n], 0);
        let b = self.batch();
        let device = self.keep.device();
        let masks: Vec<f32> = variants
            .iter()
            .flat_map(|v| {
                let f = v.as_floats();
                (0..b).flat_map(move |_| f)
            })
            .collect();
        let masks = Tensor::<2>::from_data(TensorData::new(masks, [n * b, KEEP_PARTS]), &device);
        Self {
            text: Tensor::cat(vec![self.text.clone(); n], 0),
            text_valid: Tensor::cat(vec![self.text_valid.clone(); n], 0),
            sentence: rep2(&self.sentence),
            genre: rep2(&self.genre),
            artist: rep2(&self.artist),
            start: rep2(&self.start),
            total: rep2(&self.total),
            bpm: rep2(&self.bpm),
            key: rep2(&self.key),
            meter: rep2(&self.meter),
            keep: rep2(&self.keep) * masks,
        }
    }
}

fn learned(rows: usize, d: usize, device: &Device) -> Param<Tensor<2>> {
    Param::initialized(
        ParamId::new(),
        Tensor::random(
            [rows, d],
            burn::tensor::Distribution::Normal(0.0, 0.02),
            device,
        ),
    )
}

/// Projections and learned embeddings that turn [`Conditioning`] into the memory sequence.
#[derive(Module, Debug)]
pub struct Conditioner {
    pub start_token: Param<Tensor<2>>,
    pub text_proj: Linear,
    pub null_text: Param<Tensor<2>>,
    pub genre_proj: Linear,
    pub null_genre: Param<Tensor<2>>,
    pub artist_proj: Linear,
    pub null_artist: Param<Tensor<2>>,
    pub start_proj: Linear,
    pub total_proj: Linear,
    /// `[2, d]`: nulls of `seconds_start` and `seconds_total`.
    pub null_timing: Param<Tensor<2>>,
    pub pooled_proj: Option<Linear>,
    pub null_pooled: Option<Param<Tensor<2>>>,
    /// The musical controls' projections (models with `controls`).
    pub controls: Option<ControlEmbedding>,
}

/// Tempo features and key and meter classes -> the model width, with a learned null each.
#[derive(Module, Debug)]
pub struct ControlEmbedding {
    pub bpm_proj: Linear,
    pub key_proj: Linear,
    pub meter_proj: Linear,
    /// `[3, d]`: nulls of bpm, key and meter.
    pub null: Param<Tensor<2>>,
}

impl ControlEmbedding {
    /// The three control embeddings `[B, 3, d]`, each its null where not kept.
    fn forward(&self, c: &Conditioning) -> Tensor<3> {
        let one = |x: Tensor<2>| x.unsqueeze_dim::<3>(1);
        let null = self.null.val();
        let parts = [
            (self.bpm_proj.forward(c.bpm.clone()), 4),
            (self.key_proj.forward(c.key.clone()), 5),
            (self.meter_proj.forward(c.meter.clone()), 6),
        ];
        let mixed = parts
            .into_iter()
            .enumerate()
            .map(|(j, (x, col))| {
                mix(
                    one(x),
                    null.clone().narrow(0, j, 1),
                    Conditioner::keep(c, col),
                )
            })
            .collect();
        Tensor::cat(mixed, 1)
    }
}

/// `x [B, K, d] * keep + null [K, d] * (1 - keep)`, `keep [B, 1]`.
fn mix(x: Tensor<3>, null: Tensor<2>, keep: Tensor<2>) -> Tensor<3> {
    let [b, _] = keep.dims();
    let keep = keep.reshape([b, 1, 1]);
    x * keep.clone() + null.unsqueeze_dim::<3>(0) * (keep.neg() + 1.0)
}

impl Conditioner {
    pub fn new(cfg: &DitConfig, device: &Device) -> Self {
        let (t, d) = (cfg.text_dim, cfg.d_model);
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        Self {
            start_token: learned(1, d, device),
            text_proj: lin(t, d),
            null_text: learned(1, d, device),
            genre_proj: lin(t, d),
            null_genre: learned(1, d, device),
            artist_proj: lin(t, d),
            null_artist: learned(1, d, device),
            start_proj: lin(TIMING_FEATURES, d),
            total_proj: lin(TIMING_FEATURES, d),
            null_timing: learned(2, d, device),
            pooled_proj: cfg.pooled_text.then(|| lin(t, d)),
            null_pooled: cfg.pooled_text.then(|| learned(1, d, device)),
            controls: cfg.controls.then(|| ControlEmbedding {
                bpm_proj: lin(BPM_FEATURES, d),
                key_proj: lin(KEY_CLASSES, d),
                meter_proj: lin(METER_CLASSES, d),
                null: learned(3, d, device),
            }),
        }
    }

    fn keep(c: &Conditioning, i: usize) -> Tensor<2> {
        c.keep.clone().narrow(1, i, 1)
    }

    /// The projected sentence vector `[B, d]` for the global conditioning, if configured,
    /// plus the sum of the control embeddings in models with controls.
    pub fn pooled(&self, c: &Conditioning) -> Option<Tensor<2>> {
        let (proj, null) = (self.pooled_proj.as_ref()?, self.null_pooled.as_ref()?);
        let p = proj.forward(c.sentence.clone()).unsqueeze_dim::<3>(1);
        let [b, _, d] = p.dims();
        let pooled = mix(p, null.val(), Self::keep(c, 0)).reshape([b, d]);
        Some(match &self.controls {
            Some(ctl) => pooled + ctl.forward(c).sum_dim(1).reshape([b, d]),
            None => pooled,
        })
    }

    /// The memory `[B, 1 + L + 4 (+ 3), d]` and its validity `[B, 1 + L + 4 (+ 3)]`.
    pub fn sequence(&self, c: &Conditioning) -> (Tensor<3>, Tensor<2, Bool>) {
        let [b, l, _] = c.text.dims();
        let device = c.text.device();
        let d = self.start_token.val().dims()[1];
        let one = |x: Tensor<2>| x.unsqueeze_dim::<3>(1);
        let start = self
            .start_token
            .val()
            .unsqueeze_dim::<3>(0)
            .expand([b, 1, d]);
        let text = mix(
            self.text_proj.forward(c.text.clone()),
            self.null_text.val(),
            Self::keep(c, 0),
        );
        let genre = mix(
            one(self.genre_proj.forward(c.genre.clone())),
            self.null_genre.val(),
            Self::keep(c, 1),
        );
        let artist = mix(
            one(self.artist_proj.forward(c.artist.clone())),
            self.null_artist.val(),
            Self::keep(c, 2),
        );
        let timing = mix(
            Tensor::cat(
                vec![
                    one(self.start_proj.forward(c.start.clone())),
                    one(self.total_proj.forward(c.total.clone())),
                ],
                1,
            ),
            self.null_timing.val(),
            Self::keep(c, 3),
        );
        let mut parts = vec![start, text, genre, artist, timing];
        let mut fields = 4;
        if let Some(ctl) = &self.controls {
            parts.push(ctl.forward(c));
            fields += 3;
        }
        let memory = Tensor::cat(parts, 1);
        let always = |n: usize| Tensor::<2, Bool>::full([b, n], true, &device);
        let valid = Tensor::cat(vec![always(1), c.text_valid.clone(), always(fields)], 1);
        debug_assert_eq!(valid.dims(), [b, 1 + l + fields]);
        (memory, valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::tiny;
    use crate::dit::tests::Jitter;
    use crate::{Dit, DitInput};

    fn example(cfg: &DitConfig, n_tokens: usize, fill: f32, keep: Keep) -> CondExample {
        CondExample {
            tokens: (0..n_tokens * cfg.text_dim)
                .map(|i| fill + (i % 7) as f32 * 0.1)
                .collect(),
            n_tokens,
            sentence: vec![fill; cfg.text_dim],
            genre: Some(vec![fill * 2.0; cfg.text_dim]),
            artist: Some(vec![-fill; cfg.text_dim]),
            seconds_start: fill * 3.0,
            seconds_total: 20.0 + fill,
            controls: Controls {
                bpm: Some(90.0 + 100.0 * fill),
                key: Some(musicdiff_dsp::key::Key::new(
                    9,
                    musicdiff_dsp::key::Mode::Minor,
                )),
                meter: Some(musicdiff_dsp::controls::Meter::ThreeFour),
            },
            keep,
        }
    }

    /// The tiny config with musical controls.
    fn tiny_controls() -> DitConfig {
        DitConfig {
            controls: true,
            ..tiny()
        }
    }

    /// A jittered model (every weight non-zero) and its output for the examples `[B, N, P M]`.
    fn outputs(model: &Dit, examples: &[CondExample], device: &Device) -> Vec<Vec<f32>> {
        let cfg = &model.config;
        let (b, n, pd) = (examples.len(), cfg.tokens(), cfg.patch_dim());
        let noisy: Vec<f32> = (0..b * n * pd)
            .map(|i| (((i % (n * pd)) * 13) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let input = DitInput {
            noisy: Tensor::from_data(TensorData::new(noisy, [b, n, pd]), device),
            known: Tensor::zeros([b, n, pd], device),
            mask: Tensor::zeros([b, n, 1], device),
            t: Tensor::full([b], 0.6, device),
        };
        let cond = Conditioning::from_examples(examples, cfg, device).unwrap();
        let out: Vec<f32> = model
            .forward(input, &cond)
            .into_data()
            .try_to_vec()
            .unwrap();
        out.chunks(n * pd).map(<[f32]>::to_vec).collect()
    }

    fn jittered(device: &Device) -> Dit {
        device.seed(11);
        tiny_controls().init(device).map(&mut Jitter)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn dropped_parts_ignore_their_content() {
        let device = Device::flex();
        let model = jittered(&device);
        let cfg = tiny_controls();
        // Each part dropped in turn: changing that part's content must not change the output,
        // while the same change with the part kept does.
        type Change = fn(&mut CondExample);
        let parts: [(&str, Keep, Change); 7] = [
            (
                "text",
                Keep {
                    text: false,
                    ..Keep::ALL
                },
                |e| {
                    e.tokens.iter_mut().for_each(|v| *v += 1.0);
                    e.sentence.iter_mut().for_each(|v| *v -= 1.0);
                },
            ),
            (
                "genre",
                Keep {
                    genre: false,
                    ..Keep::ALL
                },
                |e| {
                    e.genre = Some(vec![5.0; e.sentence.len()]);
                },
            ),
            (
                "artist",
                Keep {
                    artist: false,
                    ..Keep::ALL
                },
                |e| e.artist = None,
            ),
            (
                "timing",
                Keep {
                    timing: false,
                    ..Keep::ALL
                },
                |e| {
                    e.seconds_start = 11.0;
                    e.seconds_total = 3.0;
                },
            ),
            (
                "bpm",
                Keep {
                    bpm: false,
                    ..Keep::ALL
                },
                |e| e.controls.bpm = Some(200.0),
            ),
            (
                "key",
                Keep {
                    key: false,
                    ..Keep::ALL
                },
                |e| e.controls.key = musicdiff_dsp::key::Key::parse("C# major"),
            ),
            (
                "meter",
                Keep {
                    meter: false,
                    ..Keep::ALL
                },
                |e| e.controls.meter = Some(musicdiff_dsp::controls::Meter::SixEight),
            ),
        ];
        for (name, keep, change) in parts {
            let base = example(&cfg, 3, 0.3, keep);
            let mut changed = base.clone();
            change(&mut changed);
            let out = outputs(&model, &[base.clone(), changed.clone()], &device);
            assert!(
                max_diff(&out[0], &out[1]) < 1e-5,
                "{name} dropped but it matters"
            );
            let kept = |mut e: CondExample| {
                e.keep = Keep::ALL;
                e
            };
            let out = outputs(&model, &[kept(base), kept(changed)], &device);
            assert!(max_diff(&out[0], &out[1]) > 1e-4, "{name} kept but ignored");
        }
        // A missing field is the same as a dropped one.
        let mut absent = example(&cfg, 3, 0.3, Keep::ALL);
        absent.genre = None;
        let dropped = example(
            &cfg,
            3,
            0.3,
            Keep {
                genre: false,
                ..Keep::ALL
            },
        );
        let out = outputs(&model, &[absent, dropped], &device);
        assert!(max_diff(&out[0], &out[1]) < 1e-5);
        // So is an unknown control.
        let mut unknown = example(&cfg, 3, 0.3, Keep::ALL);
        unknown.controls.key = None;
        let dropped = example(
            &cfg,
            3,
            0.3,
            Keep {
                key: false,
                ..Keep::ALL
            },
        );
        let out = outputs(&model, &[unknown, dropped], &device);
        assert!(max_diff(&out[0], &out[1]) < 1e-5);
    }

    #[test]
    fn a_model_without_controls_ignores_them() {
        let device = Device::flex();
        device.seed(11);
        let model = tiny().init(&device).map(&mut Jitter);
        let base = example(&tiny(), 3, 0.3, Keep::ALL);
        let mut other = base.clone();
        other.controls.bpm = Some(250.0);
        other.controls.key = None;
        let out = outputs(&model, &[base, other], &device);
        assert!(max_diff(&out[0], &out[1]) < 1e-6);
        // Its memory has the four field tokens only.
        let cond =
            Conditioning::from_examples(&[example(&tiny(), 3, 0.3, Keep::ALL)], &tiny(), &device)
                .unwrap();
        assert_eq!(model.cond.sequence(&cond).0.dims()[1], 1 + 3 + 4);
        let with = tiny_controls().init(&device);
        assert_eq!(with.cond.sequence(&cond).0.dims()[1], 1 + 3 + 4 + 3);
    }

    #[test]
    fn caption_padding_is_masked() {
        let device = Device::flex();
        let model = jittered(&device);
        let cfg = tiny();
        let short = example(&cfg, 2, 0.4, Keep::ALL);
        let long = example(&cfg, 5, -0.2, Keep::ALL);
        let cond =
            Conditioning::from_examples(&[short.clone(), long.clone()], &cfg, &device).unwrap();
        let valid: Vec<bool> = cond.text_valid.clone().into_data().try_to_vec().unwrap();
        assert_eq!(
            valid,
            [[true; 2].as_slice(), &[false; 3], &[true; 5]].concat()
        );
        // Padded rows hold zeros, and what a short caption is batched with changes nothing.
        let text: Vec<f32> = cond.text.clone().into_data().try_to_vec().unwrap();
        assert!(
            text[2 * cfg.text_dim..5 * cfg.text_dim]
                .iter()
                .all(|&v| v == 0.0)
        );
        let alone = outputs(&model, std::slice::from_ref(&short), &device);
        let batched = outputs(&model, &[short, long], &device);
        assert!(max_diff(&alone[0], &batched[0]) < 1e-5);
        // A caption longer than max_text_tokens is cut; an empty one keeps one (dropped) token.
        let over = example(&cfg, cfg.max_text_tokens + 4, 0.1, Keep::ALL);
        let empty = example(&cfg, 0, 0.1, Keep::ALL);
        let cond = Conditioning::from_examples(&[over, empty], &cfg, &device).unwrap();
        assert_eq!(cond.text.dims()[1], cfg.max_text_tokens);
        let keep: Vec<f32> = cond.keep.into_data().try_to_vec().unwrap();
        assert_eq!(
            keep,
            [
                1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0
            ]
        );
    }

    #[test]
    fn variants_stack_in_order_and_keep_only_what_both_keep() {
        let device = Device::flex();
        let cfg = tiny();
        let no_artist = Keep {
            artist: false,
            ..Keep::ALL
        };
        let examples = [
            example(&cfg, 2, 0.1, Keep::ALL),
            example(&cfg, 2, 0.2, no_artist),
        ];
        let cond = Conditioning::from_examples(&examples, &cfg, &device).unwrap();
        let text_only = Keep {
            timing: false,
            ..Keep::ALL
        };
        let stacked = cond.with_variants(&[Keep::ALL, text_only, Keep::NONE]);
        assert_eq!(stacked.batch(), 6);
        let keep: Vec<f32> = stacked.keep.clone().into_data().try_to_vec().unwrap();
        #[rustfmt::skip]
        assert_eq!(keep, [
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,   1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, // as given
            1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0,   1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, // no timing
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // unconditional
        ]);
        // Every copy carries the same content, in batch order.
        let sentence: Vec<f32> = stacked.sentence.into_data().try_to_vec().unwrap();
        let d = cfg.text_dim;
        for copy in 0..3 {
            assert_eq!(sentence[(2 * copy) * d], 0.1);
            assert_eq!(sentence[(2 * copy + 1) * d], 0.2);
        }
        assert_eq!(
            cond.with_unconditional()
                .keep
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()[2 * KEEP_PARTS..],
            [0.0; 2 * KEEP_PARTS]
        );
    }
}
