//! The Vocos generator (Siuzdak, "Vocos: Closing the gap between time-domain and Fourier-based
//! neural vocoders for high-quality audio synthesis", 2023; reference code
//! `gemelo-ai/vocos`, `vocos/models.py`, `modules.py`, `heads.py`): a ConvNeXt backbone
//! (Liu et al. 2022) over mel frames and a head that predicts one STFT frame per mel frame,
//! inverted by the iSTFT, so the network runs at frame rate rather than sample rate.
//!
//! ```text
//! x  = LN(Embed(mel))                              Embed: kernel-k conv, n_mels -> d
//! x  = x + gamma * W2 GELU(W1 LN(DWConv_k(x)))     xL ConvNeXt blocks (gamma starts at 1/L)
//! h  = Head(LN(x)) = [a | p]                       d -> 2 (n_fft / 2 + 1)
//! phi = p                                          (phase = "direct", as Vocos)
//! phi_t = sum_{s <= t} (p_s + w_k)                 (phase = "accumulated"; w_k the advance of
//!                                                   a tone at bin k's centre over one hop)
//! X  = min(exp a, 100) (cos phi + i sin phi)       the STFT frame
//! y  = iSTFT(X)
//! ```
//! All activations are `[B, T, C]` (frames, then channels), so the pointwise layers are plain
//! linear maps and the kernel-k convolutions are sums of k shifted slices: no layout changes.
//! Differences from the reference: zero padding for the convolutions (as there), the
//! embedding's weights are laid out `[k * n_mels, d]` (tap-major), and the input is musicdiff's
//! power log-mel rather than Vocos' magnitude log-mel.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use crate::config::{PhaseHead, VocoderConfig};
use crate::spectral::SpectralOp;

/// Vocos' upper clamp on the predicted magnitude (`heads.py`).
pub(crate) const MAX_MAGNITUDE: f64 = 100.0;

/// LayerNorm's epsilon everywhere in the network (the reference's).
pub(crate) const LN_EPSILON: f64 = 1e-6;

/// Vocos initialises backbone weights from a (truncated) normal of standard deviation 0.02.
fn init_linear(i: usize, o: usize, device: &Device) -> Linear {
    LinearConfig::new(i, o)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

fn layer_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d)
        .with_epsilon(LN_EPSILON)
        .init(device)
}

/// `x [B, T, C]` with `k / 2` zero frames added at both ends: `[B, T + k - 1, C]`.
fn pad_frames(x: Tensor<3>, k: usize) -> Tensor<3> {
    let [b, _, c] = x.dims();
    let device = x.device();
    let z = Tensor::<3>::zeros([b, k / 2, c], &device);
    Tensor::cat(vec![z.clone(), x, z], 1)
}

/// One ConvNeXt block (Vocos `ConvNeXtBlock`).
#[derive(Module, Debug)]
pub struct Block {
    /// Depthwise kernel `[k, d]` and bias `[d]`.
    pub dw_weight: Param<Tensor<2>>,
    pub dw_bias: Param<Tensor<1>>,
    pub norm: LayerNorm,
    pub pw1: Linear,
    pub pw2: Linear,
    /// Layer scale `[d]`.
    pub gamma: Param<Tensor<1>>,
}

impl Block {
    fn new(cfg: &VocoderConfig, device: &Device) -> Self {
        let (d, k) = (cfg.dim, cfg.kernel);
        // A depthwise Conv1d's default init: uniform in +-1/sqrt(fan_in) with fan_in = k.
        let bound = 1.0 / (k as f64).sqrt();
        let dw = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Self {
            dw_weight: dw.init([k, d], device),
            dw_bias: Initializer::Zeros.init([d], device),
            norm: layer_norm(d, device),
            pw1: init_linear(d, cfg.intermediate, device),
            pw2: init_linear(cfg.intermediate, d, device),
            gamma: Param::from_tensor(Tensor::full([d], 1.0 / cfg.layers as f64, device)),
        }
    }

    /// `[B, T, d]` -> `[B, T, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, t, d] = x.dims();
        let [k, _] = self.dw_weight.dims();
        // 1. Depthwise convolution: sum over taps of shifted frames times the tap's weights.
        let padded = pad_frames(x.clone(), k);
        let w = self.dw_weight.val();
        let tap = |j: usize| {
            padded.clone().narrow(1, j, t) * w.clone().narrow(0, j, 1).reshape([1, 1, d])
        };
        let mut h = tap(0);
        for j in 1..k {
            h = h + tap(j);
        }
        let h = h + self.dw_bias.val().reshape([1, 1, d]);
        // 2. LayerNorm, pointwise MLP with exact GELU, layer scale, residual.
        let h = self
            .pw2
            .forward(gelu(self.pw1.forward(self.norm.forward(h))));
        x + h * self.gamma.val().reshape([1, 1, d])
    }
}

/// The whole generator: log-mel frames in, STFT frames (and through [`Vocos::waveform`],
/// audio) out.
#[derive(Module, Debug)]
pub struct Vocos {
    /// Input embedding as a linear map of `k` stacked frames: `[k * n_mels] -> [d]`.
    pub embed: Linear,
    pub embed_norm: LayerNorm,
    pub blocks: Vec<Block>,
    pub final_norm: LayerNorm,
    /// `[d] -> [2 * bins]`: log-magnitudes, then phases.
    pub head: Linear,
    #[module(skip)]
    pub config: VocoderConfig,
}

impl Vocos {
    /// A freshly initialised network (panics on an invalid config: validate first).
    pub fn new(cfg: &VocoderConfig, device: &Device) -> Self {
        cfg.validate().expect("a valid vocoder config");
        Self {
            embed: init_linear(cfg.kernel * cfg.n_mels, cfg.dim, device),
            embed_norm: layer_norm(cfg.dim, device),
            blocks: (0..cfg.layers).map(|_| Block::new(cfg, device)).collect(),
            final_norm: layer_norm(cfg.dim, device),
            // The head keeps the default (Kaiming-uniform) init, as the reference's does.
            head: LinearConfig::new(cfg.dim, 2 * cfg.n_bins()).init(device),
            config: cfg.clone(),
        }
    }

    /// Parameter count.
    pub fn parameters(&self) -> usize {
        self.num_params()
    }

    /// `log_mel [B, T, n_mels]` -> the head's outputs: magnitude and phase parameter, each
    /// `[B, T, bins]` (the phase itself, or its advances: [`Vocos::phase`]).
    pub fn head_outputs(&self, log_mel: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [_, t, _] = log_mel.dims();
        let k = self.config.kernel;
        let bins = self.config.n_bins();
        // 1. Embedding: k neighbouring frames side by side, one linear map.
        let padded = pad_frames(log_mel, k);
        let stacked = Tensor::cat((0..k).map(|j| padded.clone().narrow(1, j, t)).collect(), 2);
        let mut x = self.embed_norm.forward(self.embed.forward(stacked));
        // 2. Backbone.
        for block in &self.blocks {
            x = block.forward(x);
        }
        // 3. Head: magnitude and phase parameter of every bin.
        let h = self.head.forward(self.final_norm.forward(x));
        let mag = h.clone().narrow(2, 0, bins).exp().clamp_max(MAX_MAGNITUDE);
        (mag, h.narrow(2, bins, bins))
    }

    /// The phase `[B, T, bins]` from the head's phase parameter (over the whole sequence:
    /// accumulated phases run from its first frame).
    pub fn phase(&self, p: Tensor<3>) -> Tensor<3> {
        match self.config.phase {
            PhaseHead::Direct => p,
            PhaseHead::Accumulated => {
                let bins = self.config.n_bins();
                let advance: Vec<f32> = self
                    .config
                    .bin_advance()
                    .iter()
                    .map(|&w| w as f32)
                    .collect();
                let w = Tensor::<1>::from_floats(advance.as_slice(), &p.device());
                (p + w.reshape([1, 1, bins])).cumsum(1)
            }
        }
    }

    /// The head's outputs `(mag, p)` (each `[B, T, bins]`) -> the STFT `(re, im)`.
    pub fn spectrum_of(&self, mag: Tensor<3>, p: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let phase = self.phase(p);
        (mag.clone() * phase.clone().cos(), mag * phase.sin())
    }

    /// `log_mel [B, T, n_mels]` -> the STFT `(re, im)`, each `[B, T, bins]`.
    pub fn spectrum(&self, log_mel: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let (mag, p) = self.head_outputs(log_mel);
        self.spectrum_of(mag, p)
    }

    /// `log_mel [B, T, n_mels]` -> audio `[B, (T - 1) * hop]` through `op` (this config's
    /// `n_fft` and `hop_length`).
    pub fn waveform(&self, log_mel: Tensor<3>, op: &SpectralOp) -> Tensor<2> {
        let (re, im) = self.spectrum(log_mel);
        op.istft(re, im, None)
    }
}
