//! The DiT as an `x0` denoiser. One call:
//! 1. runs the network on `[x_t, known * m, m]` for the conditional batch and, when the guidance
//!    scale is not 1, the unconditional one in the same forward pass;
//! 2. combines the two v-predictions, `v = v_u + w (v_c - v_u)`;
//! 3. converts to `x0 = alpha_t x_t - sigma_t v` (the v-parameterisation of `musicdiff-diffusion`);
//! 4. puts the known tokens back (`x0 = m known + (1 - m) x0`), so that a sampler keeps the
//!    noise of the known region consistent with its clean values and the kept audio is exact.

use burn::prelude::*;
use musicdiff_diffusion::sampler::Denoiser;
use musicdiff_diffusion::schedule::CosineSchedule;
use musicdiff_model::{Conditioning, Dit, DitInput};

/// A batch of `B` sequences of `N` tokens of `D` values, flattened row-major.
pub struct GuidedDenoiser<'a> {
    pub model: &'a Dit,
    pub schedule: CosineSchedule,
    /// The conditioning of the batch; doubled with its unconditional copy when guiding.
    cond: Conditioning,
    /// Known clean tokens `[B, N, D]` (anything where `mask` is 0).
    known: Vec<f32>,
    /// `[B, N]`, 1 for known tokens.
    mask: Vec<f32>,
    pub guidance: f32,
    shape: [usize; 3],
    device: Device,
}

impl<'a> GuidedDenoiser<'a> {
    /// `known` and `mask` as described on the fields; `guidance` 1 disables guidance.
    pub fn new(
        model: &'a Dit,
        cond: &Conditioning,
        known: Vec<f32>,
        mask: Vec<f32>,
        shape: [usize; 3],
        guidance: f32,
        device: &Device,
    ) -> Self {
        let [b, n, d] = shape;
        assert_eq!(known.len(), b * n * d, "known must be [B, N, D]");
        assert_eq!(mask.len(), b * n, "mask must be [B, N]");
        assert_eq!(cond.batch(), b, "conditioning batch");
        let cond = if guidance != 1.0 {
            cond.with_unconditional()
        } else {
            cond.clone()
        };
        Self {
            model,
            schedule: CosineSchedule::default(),
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
        let guided = self.guidance != 1.0;
        let copies = if guided { 2 } else { 1 };
        let tile = |v: &[f32]| -> Vec<f32> { v.repeat(copies) };
        let dev = &self.device;
        let known: Vec<f32> = self
            .known
            .iter()
            .enumerate()
            .map(|(i, &k)| k * self.mask[i / d])
            .collect();
        // 1. One forward pass over [cond; uncond].
        let input = DitInput {
            noisy: Tensor::from_data(TensorData::new(tile(x), [copies * b, n, d]), dev),
            known: Tensor::from_data(TensorData::new(tile(&known), [copies * b, n, d]), dev),
            mask: Tensor::from_data(TensorData::new(tile(&self.mask), [copies * b, n, 1]), dev),
            t: Tensor::full([copies * b], t as f32, dev),
        };
        let v: Vec<f32> = self
            .model
            .forward(input, &self.cond)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 data");
        // 2. Guidance.
        let len = b * n * d;
        let v: Vec<f32> = if guided {
            let w = self.guidance;
            (0..len)
                .map(|i| v[len + i] + w * (v[i] - v[len + i]))
                .collect()
        } else {
            v
        };
        // 3. v -> x0, 4. known tokens back in place.
        let (alpha, sigma) = self.schedule.alpha_sigma(t);
        let (alpha, sigma) = (alpha as f32, sigma as f32);
        (0..len)
            .map(|i| {
                let m = self.mask[i / d];
                let x0 = alpha * x[i] - sigma * v[i];
                m * self.known[i] + (1.0 - m) * x0
            })
            .collect()
    }
}
