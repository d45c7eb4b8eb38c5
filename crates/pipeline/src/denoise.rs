//! The DiT as an `x0` denoiser. One call:
//! 1. runs the network on `[x_t, known * m, m]` for the conditional batch and, when guiding,
//!    its unconditional copy (and, with a separate timing scale, a text-only copy) in the same
//!    forward pass;
//! 2. combines the v-predictions by classifier-free guidance (Ho & Salimans 2022):
//!    `v = v_u + w (v_c - v_u)`, or with separate scales for the caption (with its genre and
//!    artist fields) and the timing, as InstructPix2Pix composes two conditions (Brooks et al.
//!    2023, eq. 3): `v = v_u + w_text (v_text - v_u) + w_timing (v_c - v_text)`;
//! 3. reads the guided output as `x0` through the model's [`Objective`] (`x0 = alpha_t x_t -
//!    sigma_t v` for a v-model, the output itself for an x0-model; guidance may combine the
//!    outputs first because the reading is affine and the guidance weights sum to 1);
//! 4. puts the known tokens back (`x0 = m known + (1 - m) x0`), so that a sampler keeps the
//!    noise of the known region consistent with its clean values and the kept audio is exact.

use burn::prelude::*;
use musicdiff_diffusion::Objective;
use musicdiff_diffusion::sampler::Denoiser;
use musicdiff_model::{Conditioning, Dit, DitInput, Keep};

/// Classifier-free guidance scales; 1 everywhere disables guidance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guidance {
    /// Scale of the caption and the genre/artist fields.
    pub text: f32,
    /// Scale of the timing conditioning; `None` uses `text` for everything.
    pub timing: Option<f32>,
}

impl Guidance {
    /// One scale for all conditioning.
    pub fn new(scale: f32) -> Self {
        Self {
            text: scale,
            timing: None,
        }
    }

    fn separate_timing(&self) -> Option<f32> {
        self.timing.filter(|&w| w != self.text)
    }

    /// The conditioning variants one evaluation needs: conditional first, unconditional last.
    fn variants(&self) -> Vec<Keep> {
        let text_only = Keep {
            timing: false,
            ..Keep::ALL
        };
        match self.separate_timing() {
            Some(_) => vec![Keep::ALL, text_only, Keep::NONE],
            None if self.text == 1.0 => vec![Keep::ALL],
            None => vec![Keep::ALL, Keep::NONE],
        }
    }

    /// Combines the v-predictions of [`Self::variants`] (`parts[k]` is variant `k`).
    fn combine(&self, parts: &[&[f32]]) -> Vec<f32> {
        match (self.separate_timing(), parts) {
            (Some(wt), [c, text, u]) => {
                let w = self.text;
                (0..c.len())
                    .map(|i| u[i] + w * (text[i] - u[i]) + wt * (c[i] - text[i]))
                    .collect()
            }
            (None, [c, u]) => {
                let w = self.text;
                (0..c.len()).map(|i| u[i] + w * (c[i] - u[i])).collect()
            }
            (_, [c]) => c.to_vec(),
            _ => unreachable!("variants and parts agree"),
        }
    }

    /// Forward passes per denoiser call (the batch multiplier).
    pub fn copies(&self) -> usize {
        self.variants().len()
    }
}

/// A batch of `B` sequences of `N` tokens of `D` values, flattened row-major.
pub struct GuidedDenoiser<'a> {
    pub model: &'a Dit,
    /// How the network's output is read (and the schedule samplers step on).
    pub objective: Objective,
    /// The conditioning of the batch; doubled with its unconditional copy when guiding.
    cond: Conditioning,
    /// Known clean tokens `[B, N, D]` (anything where `mask` is 0).
    known: Vec<f32>,
    /// `[B, N]`, 1 for known tokens.
    mask: Vec<f32>,
    pub guidance: Guidance,
    shape: [usize; 3],
    device: Device,
}

impl<'a> GuidedDenoiser<'a> {
    /// `known` and `mask` as described on the fields.
    pub fn new(
        model: &'a Dit,
        cond: &Conditioning,
        known: Vec<f32>,
        mask: Vec<f32>,
        shape: [usize; 3],
        guidance: Guidance,
        device: &Device,
    ) -> Self {
        let [b, n, d] = shape;
        assert_eq!(known.len(), b * n * d, "known must be [B, N, D]");
        assert_eq!(mask.len(), b * n, "mask must be [B, N]");
        assert_eq!(cond.batch(), b, "conditioning batch");
        let variants = guidance.variants();
        let cond = if variants.len() > 1 {
            cond.with_variants(&variants)
        } else {
            cond.clone()
        };
        Self {
            model,
            objective: model.config.objective(),
            cond,
            known,
            mask,
            guidance,
            shape,
            device: device.clone(),
        }
    }
}

impl Denoiser for GuidedDenoiser<'_> {
    fn x0(&mut self, x: &[f32], t: f64) -> Vec<f32> {
        let [b, n, d] = self.shape;
        let copies = self.guidance.copies();
        let tile = |v: &[f32]| -> Vec<f32> { v.repeat(copies) };
        let dev = &self.device;
        let known: Vec<f32> = self
            .known
            .iter()
            .enumerate()
            .map(|(i, &k)| k * self.mask[i / d])
            .collect();
        // 1. One forward pass over all variants.
        let input = DitInput {
            noisy: Tensor::from_data(TensorData::new(tile(x), [copies * b, n, d]), dev),
            known: Tensor::from_data(TensorData::new(tile(&known), [copies * b, n, d]), dev),
            mask: Tensor::from_data(TensorData::new(tile(&self.mask), [copies * b, n, 1]), dev),
            t: Tensor::full([copies * b], t as f32, dev),
        };
        let out: Vec<f32> = self
            .model
            .forward(input, &self.cond)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 data");
        // 2. Guidance.
        let len = b * n * d;
        let parts: Vec<&[f32]> = out.chunks(len).collect();
        let out = self.guidance.combine(&parts);
        // 3. Output -> x0, 4. known tokens back in place.
        let (cx, co) = self.objective.x0_coefficients(t);
        (0..len)
            .map(|i| {
                let m = self.mask[i / d];
                m * self.known[i] + (1.0 - m) * (cx * x[i] + co * out[i])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musicdiff_diffusion::CosineSchedule;
    use musicdiff_model::Prediction;

    #[test]
    fn guidance_combines_as_the_formulas_say() {
        let (c, text, u) = ([1.0f32, 2.0], [0.5f32, 1.0], [0.0f32, -1.0]);
        assert_eq!(Guidance::new(1.0).copies(), 1);
        assert_eq!(Guidance::new(1.0).combine(&[&c]), c.to_vec());
        let g = Guidance::new(3.0);
        assert_eq!(g.copies(), 2);
        assert_eq!(g.combine(&[&c, &u]), vec![3.0, 8.0]);
        // Equal separate scales are the single-scale case.
        let same = Guidance {
            text: 3.0,
            timing: Some(3.0),
        };
        assert_eq!(same.copies(), 2);
        let split = Guidance {
            text: 3.0,
            timing: Some(1.0),
        };
        assert_eq!(split.copies(), 3);
        // u + 3 (text - u) + 1 (c - text)
        assert_eq!(split.combine(&[&c, &text, &u]), vec![2.0, 6.0]);
    }

    #[test]
    fn the_output_is_read_as_the_model_predicts_and_known_tokens_stay() {
        use musicdiff_model::{AbsoluteKind, CondExample, DitConfig, PositionEncoding};
        let device = Device::flex();
        let cfg = |prediction| DitConfig {
            n_mels: 4,
            patch_frames: 2,
            frames: 8,
            d_model: 8,
            depth: 1,
            heads: 2,
            mlp_ratio: 2.0,
            text_dim: 4,
            max_text_tokens: 3,
            position: PositionEncoding::Both,
            absolute: AbsoluteKind::Sinusoidal,
            rope_theta: 10000.0,
            max_seconds: 60.0,
            pooled_text: true,
            head_hidden: None,
            prediction,
            schedule_shift: 2.0,
            controls: false,
            freq_stem: None,
            freq_tail: None,
        };
        let (n, d) = (4, 8);
        let x: Vec<f32> = (0..n * d).map(|i| (i % 5) as f32 - 2.0).collect();
        let known = vec![7.0f32; n * d];
        let mask = vec![1.0, 0.0, 0.0, 0.0]; // the first token is known
        let t = 0.4;
        let (alpha, _) = CosineSchedule::shifted(2.0).alpha_sigma(t);
        for prediction in [Prediction::V, Prediction::X0] {
            let cfg = cfg(prediction);
            // A fresh model outputs exactly zero (zero-initialised projection, zero bias).
            let model = cfg.init(&device);
            let ex = CondExample {
                tokens: vec![0.1; cfg.text_dim],
                n_tokens: 1,
                sentence: vec![0.1; cfg.text_dim],
                genre: None,
                artist: None,
                seconds_start: 0.0,
                seconds_total: 4.0,
                controls: Default::default(),
                keep: Keep::ALL,
            };
            let cond = Conditioning::from_examples(&[ex], &cfg, &device).unwrap();
            let mut den = GuidedDenoiser::new(
                &model,
                &cond,
                known.clone(),
                mask.clone(),
                [1, n, d],
                Guidance::new(3.0),
                &device,
            );
            let x0 = den.x0(&x, t);
            for (i, (&got, &xi)) in x0.iter().zip(&x).enumerate() {
                let want = match (i < d, prediction) {
                    (true, _) => 7.0,
                    // v = 0: x0 = alpha x_t.
                    (false, Prediction::V) => alpha as f32 * xi,
                    // x0 = the output.
                    (false, Prediction::X0) => 0.0,
                };
                assert!(
                    (got - want).abs() < 1e-5,
                    "{prediction:?} {i}: {got} vs {want}"
                );
            }
        }
    }
}
