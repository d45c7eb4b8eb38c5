//! Convolutions along the mel axis inside each token: the time-frequency backbone arms of the
//! design's experiments (issue 14). A token is `P` frames of all `M` mel bands flattened, so the
//! plain patch embedding has no sharing across frequency: a pitch shift is a different pattern
//! at every height. Spectrogram models share it with 2-D convolutions (AudioLDM's and JEN-1's
//! U-Nets) or 2-D patches; these two layers add it at the token's edges of the transformer at
//! little cost, as convolutional stems do for vision transformers (Xiao et al., "Early
//! Convolutions Help Transformers See Better", 2021):
//!
//! - the **stem** reads each token's noisy patch, known patch and mask as `2P + 1` channels over
//!   the `M` bands, applies two convolutions along the bands (kernel [`KERNEL`], GELU) and adds
//!   a projection of the result to the token embedding;
//! - the **tail** refines the predicted patch the same way (`P` channels over `M` bands, two
//!   convolutions, a residual).
//!
//! Both end in zero-initialised layers, so they start as no change: a model trained without
//! them can be continued with them (`--init-from`), as with the output head's MLP branch. The
//! convolutions are written as an unfold along the bands and one matrix product (the same
//! weights a `Conv1d` would hold), which keeps them on the GEMM path of the CPU backend.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// Width of the convolutions along the mel axis (bands).
pub const KERNEL: usize = 5;

/// `x [R, C, M]` -> `[R, M, C * KERNEL]`: each band with its `KERNEL` neighbours (zeros past the
/// edges), channel-major within a band.
fn unfold(x: Tensor<3>) -> Tensor<3> {
    let [r, c, m] = x.dims();
    let half = KERNEL / 2;
    let device = x.device();
    let pad = Tensor::<3>::zeros([r, c, half], &device);
    let padded = Tensor::cat(vec![pad.clone(), x, pad], 2);
    let shifted: Vec<Tensor<3>> = (0..KERNEL)
        .map(|j| padded.clone().narrow(2, j, m))
        .collect();
    // [R, C, K, M] -> [R, M, C, K] -> [R, M, C K]
    Tensor::stack::<4>(shifted, 2)
        .permute([0, 3, 1, 2])
        .reshape([r, m, c * KERNEL])
}

/// One convolution along the bands: `[R, C_in, M]` -> `[R, M, C_out]`.
#[derive(Module, Debug)]
pub struct BandConv {
    pub weight: Linear,
}

impl BandConv {
    fn new(c_in: usize, c_out: usize, zero: bool, device: &Device) -> Self {
        let mut cfg = LinearConfig::new(c_in * KERNEL, c_out);
        if zero {
            cfg = cfg.with_initializer(Initializer::Zeros);
        }
        Self {
            weight: cfg.init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.weight.forward(unfold(x))
    }
}

/// The stem: token patches -> an addition to the token embedding.
#[derive(Module, Debug)]
pub struct FreqStem {
    pub conv1: BandConv,
    pub conv2: BandConv,
    /// `[C M] -> d`, zero-initialised.
    pub proj: Linear,
}

impl FreqStem {
    pub fn new(p: usize, m: usize, channels: usize, d: usize, device: &Device) -> Self {
        Self {
            conv1: BandConv::new(2 * p + 1, channels, false, device),
            conv2: BandConv::new(channels, channels, false, device),
            proj: LinearConfig::new(channels * m, d)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    /// `noisy`, `known` `[B, N, M P]` (mel-major tokens, as `patch::patchify` lays them out) and
    /// `mask` `[B, N, 1]` -> `[B, N, d]`.
    pub fn forward(
        &self,
        noisy: Tensor<3>,
        known: Tensor<3>,
        mask: Tensor<3>,
        n_mels: usize,
    ) -> Tensor<3> {
        let [b, n, mp] = noisy.dims();
        let (m, p) = (n_mels, mp / n_mels);
        // [B, N, M P] -> [B N, P, M]: frames as channels, bands as the axis.
        let bands = |t: Tensor<3>| t.reshape([b * n, m, p]).swap_dims(1, 2);
        let mask = mask.reshape([b * n, 1, 1]).expand([b * n, 1, m]);
        let x = Tensor::cat(vec![bands(noisy), bands(known), mask], 1);
        // [B N, 2P + 1, M] -> [B N, M, C] -> [B N, C, M] -> [B N, M, C]
        let h = gelu(self.conv1.forward(x)).swap_dims(1, 2);
        let h = gelu(self.conv2.forward(h));
        let c = h.dims()[2];
        // [B N, M, C] -> [B, N, M C] -> [B, N, d]
        self.proj.forward(h.reshape([b, n, m * c]))
    }
}

/// The tail: a residual refinement of the predicted patches along the bands.
#[derive(Module, Debug)]
pub struct FreqTail {
    pub conv1: BandConv,
    /// Zero-initialised: the tail starts as the identity.
    pub conv2: BandConv,
}

impl FreqTail {
    pub fn new(p: usize, channels: usize, device: &Device) -> Self {
        Self {
            conv1: BandConv::new(p, channels, false, device),
            conv2: BandConv::new(channels, p, true, device),
        }
    }

    /// `out [B, N, M P]` -> the same, refined.
    pub fn forward(&self, out: Tensor<3>, n_mels: usize) -> Tensor<3> {
        let [b, n, mp] = out.dims();
        let (m, p) = (n_mels, mp / n_mels);
        // [B, N, M P] -> [B N, P, M]
        let x = out.clone().reshape([b * n, m, p]).swap_dims(1, 2);
        let h = gelu(self.conv1.forward(x)).swap_dims(1, 2);
        // [B N, M, P] is the token's own [M, P] layout.
        let delta = self.conv2.forward(h);
        out + delta.reshape([b, n, mp])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(dims: [usize; 3], device: &Device) -> Tensor<3> {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0).collect();
        Tensor::from_data(TensorData::new(v, dims), device)
    }

    #[test]
    fn the_unfold_is_a_convolution_along_the_bands() {
        let device = Device::flex();
        let (r, c, m) = (2, 3, 7);
        let x = data([r, c, m], &device);
        let u: Vec<f32> = unfold(x.clone()).into_data().try_to_vec().unwrap();
        let xv: Vec<f32> = x.into_data().try_to_vec().unwrap();
        let half = (KERNEL / 2) as isize;
        for row in 0..r {
            for band in 0..m {
                for ch in 0..c {
                    for j in 0..KERNEL {
                        let src = band as isize + j as isize - half;
                        let want = if (0..m as isize).contains(&src) {
                            xv[(row * c + ch) * m + src as usize]
                        } else {
                            0.0
                        };
                        let got = u[(row * m + band) * c * KERNEL + ch * KERNEL + j];
                        assert_eq!(got, want, "row {row} band {band} ch {ch} tap {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn stem_and_tail_start_as_no_change_and_share_weights_across_bands() {
        let device = Device::flex();
        let (b, n, m, p, c, d) = (2, 3, 8, 2, 4, 6);
        let stem = FreqStem::new(p, m, c, d, &device);
        let noisy = data([b, n, m * p], &device);
        let known = data([b, n, m * p], &device) * 0.5;
        let mask = Tensor::<3>::ones([b, n, 1], &device);
        let out = stem.forward(noisy.clone(), known, mask, m);
        assert_eq!(out.dims(), [b, n, d]);
        assert_eq!(out.abs().max().into_scalar::<f32>(), 0.0);
        let tail = FreqTail::new(p, c, &device);
        let refined = tail.forward(noisy.clone(), m);
        let diff = (refined - noisy).abs().max().into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        // The same convolution at every height: a pattern moved up one band (away from the
        // edges) gives the same response moved up one band.
        let conv = BandConv::new(1, 2, false, &device);
        let mut a = vec![0.0f32; 12];
        a[4] = 1.0;
        a[5] = -0.5;
        let mut shifted = vec![0.0f32; 12];
        shifted[5] = 1.0;
        shifted[6] = -0.5;
        let run = |v: Vec<f32>| -> Vec<f32> {
            conv.forward(Tensor::from_data(TensorData::new(v, [1, 1, 12]), &device))
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        let (ra, rs) = (run(a), run(shifted));
        for band in 2..9 {
            for o in 0..2 {
                assert!((ra[band * 2 + o] - rs[(band + 1) * 2 + o]).abs() < 1e-6);
            }
        }
    }
}
