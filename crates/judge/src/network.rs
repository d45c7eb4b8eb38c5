//! The MTT musicnn network (Pons & Serra, "musicnn: Pre-trained convolutional neural networks
//! for music audio tagging", ISMIR 2019 LBD; Pons et al., "End-to-end learning for music audio
//! tagging at scale", ISMIR 2018) in burn: `musicnn/models.py::build_musicnn` with
//! num_filt=1.6, num_filt_midend=64, num_units_backend=200, as docs/musicnn-port.md §2.2.
//!
//! TF works in NHWC with H = time and W = mel; here the front end is NCHW `[B, C, T, 96]` and
//! the mid-end, whose kernels span the whole feature axis, is Conv1d over time `[B, C, T]`.
//! Every layer is conv -> bias -> ReLU -> batch norm (epsilon 1e-3, inference statistics).
//!
//! Weights come from `mtt_musicnn.safetensors` (TF names and layouts, written by
//! `scripts/musicnn/read_ckpt.py`); [`MusicnnNet::load`] permutes the kernels into burn's.

use std::path::Path;

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use safetensors::{Dtype, SafeTensors};

use crate::error::{JudgeError, Result};

/// TF's batch-normalisation epsilon (burn's default is 1e-5).
const BN_EPSILON: f64 = 1e-3;
/// Filters of each timbral branch: int(1.6 * 128).
const TIMBRAL_FILTERS: usize = 204;
/// Filters of each temporal branch: int(1.6 * 32).
const TEMPORAL_FILTERS: usize = 51;
/// Timbral filter heights over the mel axis: int(0.4 * 96), int(0.7 * 96); 7 frames long.
const TIMBRAL_HEIGHTS: [usize; 2] = [38, 67];
/// Temporal filter lengths in frames (1 mel band wide).
const TEMPORAL_LENGTHS: [usize; 3] = [128, 64, 32];
/// Front-end features: 2 * 204 + 3 * 51.
pub const FRONT: usize = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS;
/// Mid-end filters.
const MIDEND: usize = 64;
/// Pooled feature width: front end + three mid-end layers (561 + 3 * 64 = 753).
pub const POOLED: usize = FRONT + 3 * MIDEND;
/// Penultimate (dense) units.
pub const PENULTIMATE: usize = 200;
/// Output tags.
pub const TAGS: usize = 50;

/// A convolution followed by ReLU and batch norm (the order of every musicnn layer).
#[derive(Module, Debug)]
pub struct ConvBn2d {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A 1-D convolution over time followed by ReLU and batch norm.
#[derive(Module, Debug)]
pub struct ConvBn1d {
    pub conv: Conv1d,
    pub bn: BatchNorm,
}

/// MTT musicnn.
#[derive(Module, Debug)]
pub struct MusicnnNet {
    /// `batch_normalization`: one scalar affine map on the log-mel input.
    pub input_bn: BatchNorm,
    /// `conv2d`, `conv2d_1`: 7x38 and 7x67 (time x mel) filters, 1 -> 204.
    pub timbral: Vec<ConvBn2d>,
    /// `conv2d_2..4`: 128x1, 64x1 and 32x1 filters, 1 -> 51, TF 'SAME' in time.
    pub temporal: Vec<ConvBn2d>,
    /// `conv2d_5..7` as Conv1d over time: 561 -> 64, then 64 -> 64 twice (residual).
    pub midend: Vec<ConvBn1d>,
    /// `batch_normalization_9` on the interleaved [max, mean] pool (1506).
    pub pool_bn: BatchNorm,
    /// `dense`: 1506 -> 200, ReLU.
    pub dense: Linear,
    /// `batch_normalization_10`: its output is the "penultimate" embedding.
    pub dense_bn: BatchNorm,
    /// `dense_1`: 200 -> 50 logits.
    pub output: Linear,
}

/// One batch's outputs.
#[derive(Debug, Clone)]
pub struct NetOutput {
    /// Sigmoid tag probabilities `[B, 50]`.
    pub taggram: Tensor<2>,
    /// `[B, 200]`, after the dense layer's ReLU and batch norm.
    pub penultimate: Tensor<2>,
    /// Mean over time of the 753 front-end + mid-end features `[B, 753]`.
    pub mean_pool: Tensor<2>,
    /// Max over time of the same `[B, 753]`.
    pub max_pool: Tensor<2>,
}

/// TF 'SAME' padding of an even or odd kernel of length `k` at stride 1: (before, after), the
/// extra row after.
fn same_padding(k: usize) -> (usize, usize) {
    let before = (k - 1) / 2;
    (before, k - 1 - before)
}

impl MusicnnNet {
    /// Forward pass on log-mel patches `x: [B, 187, 96]` (any number of frames works: the
    /// network is fully convolutional in time up to its global pooling).
    pub fn forward(&self, x: Tensor<3>) -> NetOutput {
        let [b, t, f] = x.dims();
        let x = x.reshape([b, 1, t, f]); // [B, 1, T, 96]
        let xn = self.input_bn.forward(x);
        let mut front = Vec::with_capacity(5);
        for layer in self.timbral.iter().chain(&self.temporal) {
            // [B, C, T, W] -> max over the remaining mel axis -> [B, C, T]
            let y = layer.bn.forward(relu(layer.conv.forward(xn.clone())));
            let [_, c, _, _] = y.dims();
            front.push(y.max_dim(3).reshape([b, c, t]));
        }
        let front = Tensor::cat(front, 1); // [B, 561, T]: f74 | f77 | s1 | s2 | s3
        let block = |l: &ConvBn1d, x: Tensor<3>| l.bn.forward(relu(l.conv.forward(x)));
        let c1 = block(&self.midend[0], front.clone()); // [B, 64, T]
        let r2 = block(&self.midend[1], c1.clone()) + c1.clone();
        let r3 = block(&self.midend[2], r2.clone()) + r2.clone();
        let mid = Tensor::cat(vec![front, c1, r2, r3], 1); // [B, 753, T]
        let max_pool = mid.clone().max_dim(2); // [B, 753, 1]
        let mean_pool = mid.mean_dim(2); // [B, 753, 1]
        // TF concatenates [B, 753, 1] pools on the last axis and flattens: [max0, mean0, max1, ...]
        let pooled =
            Tensor::cat(vec![max_pool.clone(), mean_pool.clone()], 2).reshape([b, 2 * POOLED]); // [B, 1506]
        let pooled = self.pool_bn.forward(pooled);
        let penultimate = self.dense_bn.forward(relu(self.dense.forward(pooled))); // [B, 200]
        let taggram = sigmoid(self.output.forward(penultimate.clone())); // [B, 50]
        NetOutput {
            taggram,
            penultimate,
            mean_pool: mean_pool.reshape([b, POOLED]),
            max_pool: max_pool.reshape([b, POOLED]),
        }
    }

    /// Loads the 64 inference tensors of `mtt_musicnn.safetensors` (TF names and layouts).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|cause| JudgeError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| JudgeError::Weights {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let w = Weights {
            st: &st,
            path,
            device,
        };
        let timbral = TIMBRAL_HEIGHTS
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                // VALID over mel, explicit 3/3 zero padding in time (after the input BN).
                let pad = PaddingConfig2d::Explicit(3, 0, 3, 0);
                w.conv_bn_2d(i, i + 1, [7, h], TIMBRAL_FILTERS, pad)
            })
            .collect::<Result<Vec<_>>>()?;
        let temporal = TEMPORAL_LENGTHS
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let (before, after) = same_padding(k);
                let pad = PaddingConfig2d::Explicit(before, 0, after, 0);
                w.conv_bn_2d(i + 2, i + 3, [k, 1], TEMPORAL_FILTERS, pad)
            })
            .collect::<Result<Vec<_>>>()?;
        let midend = [FRONT, MIDEND, MIDEND]
            .iter()
            .enumerate()
            .map(|(i, &c)| w.conv_bn_1d(i + 5, i + 6, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input_bn: w.bn("batch_normalization", 1)?,
            timbral,
            temporal,
            midend,
            pool_bn: w.bn("batch_normalization_9", 2 * POOLED)?,
            dense: w.linear("dense", 2 * POOLED, PENULTIMATE)?,
            dense_bn: w.bn("batch_normalization_10", PENULTIMATE)?,
            output: w.linear("dense_1", PENULTIMATE, TAGS)?,
        })
    }
}

/// Typed access to the TF-named tensors of the safetensors file.
struct Weights<'a> {
    st: &'a SafeTensors<'a>,
    path: &'a Path,
    device: &'a Device,
}

impl Weights<'_> {
    fn bad(&self, detail: String) -> JudgeError {
        JudgeError::Weights {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    /// Tensor `name` as f32 with exactly `shape` (TF layout).
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let view = self
            .st
            .tensor(name)
            .map_err(|e| self.bad(format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(self.bad(format!(
                "{name} is {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    fn bn(&self, name: &str, n: usize) -> Result<BatchNorm> {
        let mut bn = BatchNormConfig::new(n)
            .with_epsilon(BN_EPSILON)
            .init(self.device);
        bn.gamma = Param::from_tensor(self.tensor(&format!("{name}/gamma"), [n])?);
        bn.beta = Param::from_tensor(self.tensor(&format!("{name}/beta"), [n])?);
        bn.running_mean = RunningState::new(self.tensor(&format!("{name}/moving_mean"), [n])?);
        bn.running_var = RunningState::new(self.tensor(&format!("{name}/moving_variance"), [n])?);
        Ok(bn)
    }

    fn linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let mut lin = LinearConfig::new(d_in, d_out).init(self.device);
        // burn's default row layout is [d_in, d_out], TF's dense kernel layout.
        lin.weight = Param::from_tensor(self.tensor(&format!("{name}/kernel"), [d_in, d_out])?);
        lin.bias = Some(Param::from_tensor(
            self.tensor(&format!("{name}/bias"), [d_out])?,
        ));
        Ok(lin)
    }

    /// `conv2d_{conv}` (1 input channel) and `batch_normalization_{bn}`.
    fn conv_bn_2d(
        &self,
        conv: usize,
        bn: usize,
        [kh, kw]: [usize; 2],
        filters: usize,
        padding: PaddingConfig2d,
    ) -> Result<ConvBn2d> {
        let name = conv_name(conv);
        let mut c = Conv2dConfig::new([1, filters], [kh, kw])
            .with_padding(padding)
            .init(self.device);
        // TF [kh, kw, in, out] -> burn [out, in, kh, kw]
        let k = self.tensor(&format!("{name}/kernel"), [kh, kw, 1, filters])?;
        c.weight = Param::from_tensor(k.permute([3, 2, 0, 1]));
        c.bias = Some(Param::from_tensor(
            self.tensor(&format!("{name}/bias"), [filters])?,
        ));
        Ok(ConvBn2d {
            conv: c,
            bn: self.bn(&format!("batch_normalization_{bn}"), filters)?,
        })
    }

    /// `conv2d_{conv}`, a `[7, c_in]` kernel over [time, features] with 1 input channel, as a
    /// Conv1d over time with `c_in` channels; and `batch_normalization_{bn}`.
    fn conv_bn_1d(&self, conv: usize, bn: usize, c_in: usize) -> Result<ConvBn1d> {
        let name = conv_name(conv);
        let mut c = Conv1dConfig::new(c_in, MIDEND, 7)
            .with_padding(PaddingConfig1d::Explicit(3, 3))
            .init(self.device);
        // TF [7, c_in, 1, 64] -> [7, c_in, 64] -> burn [64, c_in, 7]
        let k = self.tensor(&format!("{name}/kernel"), [7, c_in, 1, MIDEND])?;
        c.weight = Param::from_tensor(k.reshape([7, c_in, MIDEND]).permute([2, 1, 0]));
        c.bias = Some(Param::from_tensor(
            self.tensor(&format!("{name}/bias"), [MIDEND])?,
        ));
        Ok(ConvBn1d {
            conv: c,
            bn: self.bn(&format!("batch_normalization_{bn}"), MIDEND)?,
        })
    }
}

/// TF's layer naming: `conv2d`, `conv2d_1`, ...
fn conv_name(i: usize) -> String {
    if i == 0 {
        "conv2d".into()
    } else {
        format!("conv2d_{i}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mel::N_MELS;

    #[test]
    fn tf_same_padding_puts_the_extra_row_after() {
        assert_eq!(same_padding(128), (63, 64));
        assert_eq!(same_padding(64), (31, 32));
        assert_eq!(same_padding(32), (15, 16));
        assert_eq!(same_padding(7), (3, 3));
        assert_eq!(FRONT, 561);
        assert_eq!(POOLED, 753);
    }

    #[test]
    fn pooled_features_are_flattened_interleaved_max_then_mean() {
        // The same cat + reshape as forward: [B, F, 1] ++ [B, F, 1] on the last axis.
        let device = Device::flex();
        let max = Tensor::<3>::from_data(TensorData::new(vec![1f32, 2., 3.], [1, 3, 1]), &device);
        let mean =
            Tensor::<3>::from_data(TensorData::new(vec![10f32, 20., 30.], [1, 3, 1]), &device);
        let flat = Tensor::cat(vec![max, mean], 2).reshape([1, 6]);
        let v: Vec<f32> = flat.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v, [1., 10., 2., 20., 3., 30.]);
    }

    #[test]
    fn a_random_network_maps_patches_to_the_documented_shapes() {
        let device = Device::flex();
        let net = random_net(&device);
        let x = Tensor::<3>::random(
            [2, 187, N_MELS],
            burn::tensor::Distribution::Uniform(0.0, 4.0),
            &device,
        );
        let out = net.forward(x);
        assert_eq!(out.taggram.dims(), [2, TAGS]);
        assert_eq!(out.penultimate.dims(), [2, PENULTIMATE]);
        assert_eq!(out.mean_pool.dims(), [2, POOLED]);
        assert_eq!(out.max_pool.dims(), [2, POOLED]);
        let tags: Vec<f32> = out.taggram.into_data().try_to_vec::<f32>().unwrap();
        assert!(tags.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    /// The architecture with burn's random initialisation (shape tests only).
    fn random_net(device: &Device) -> MusicnnNet {
        let bn = |n| {
            BatchNormConfig::new(n)
                .with_epsilon(BN_EPSILON)
                .init(device)
        };
        let conv2 = |[kh, kw]: [usize; 2], f, pad| ConvBn2d {
            conv: Conv2dConfig::new([1, f], [kh, kw])
                .with_padding(pad)
                .init(device),
            bn: bn(f),
        };
        MusicnnNet {
            input_bn: bn(1),
            timbral: TIMBRAL_HEIGHTS
                .iter()
                .map(|&h| {
                    conv2(
                        [7, h],
                        TIMBRAL_FILTERS,
                        PaddingConfig2d::Explicit(3, 0, 3, 0),
                    )
                })
                .collect(),
            temporal: TEMPORAL_LENGTHS
                .iter()
                .map(|&k| {
                    let (a, b) = same_padding(k);
                    conv2(
                        [k, 1],
                        TEMPORAL_FILTERS,
                        PaddingConfig2d::Explicit(a, 0, b, 0),
                    )
                })
                .collect(),
            midend: [FRONT, MIDEND, MIDEND]
                .iter()
                .map(|&c| ConvBn1d {
                    conv: Conv1dConfig::new(c, MIDEND, 7)
                        .with_padding(PaddingConfig1d::Explicit(3, 3))
                        .init(device),
                    bn: bn(MIDEND),
                })
                .collect(),
            pool_bn: bn(2 * POOLED),
            dense: LinearConfig::new(2 * POOLED, PENULTIMATE).init(device),
            dense_bn: bn(PENULTIMATE),
            output: LinearConfig::new(PENULTIMATE, TAGS).init(device),
        }
    }
}
