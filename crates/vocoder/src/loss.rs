//! The reconstruction loss a vocoder trains on, and which the DiT's conversion term reuses:
//! `L = mel_weight * L_mel + stft_weight * (1/R) sum_r (SC_r + LM_r)`, with `L_mel` the L1
//! between musicdiff log-mels of prediction and target (HiFi-GAN's and Vocos' mel loss, on our
//! own features), and `SC_r`, `LM_r` the spectral convergence and log-magnitude L1 at STFT
//! resolution `r` (Parallel WaveGAN's multi-resolution STFT loss, Yamamoto et al. 2020).
//! Every term compares magnitudes only: the prediction's phase need not match the target's.

use burn::prelude::*;
use musicdiff_dsp::features::SpectrogramConfig;
use serde::{Deserialize, Serialize};

use crate::spectral::{LogMel, SpectralOp, stft_distance};

/// Weights and resolutions of the reconstruction loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub mel_weight: f64,
    pub stft_weight: f64,
    /// `(n_fft, hop)` pairs, window = n_fft; hop must divide n_fft.
    pub resolutions: Vec<(usize, usize)>,
}

impl Default for LossConfig {
    /// The resolutions of Vocos' and UnivNet's multi-resolution discriminators (2048, 1024 and
    /// 512 with hop n / 4), mel and STFT terms equally weighted.
    fn default() -> Self {
        Self {
            mel_weight: 1.0,
            stft_weight: 1.0,
            resolutions: vec![(2048, 512), (1024, 256), (512, 128)],
        }
    }
}

impl LossConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.resolutions.is_empty() && self.stft_weight != 0.0 {
            return Err("stft_weight is set but no resolutions are given".into());
        }
        for &(n, hop) in &self.resolutions {
            if !n.is_power_of_two() || hop == 0 || !n.is_multiple_of(hop) {
                return Err(format!(
                    "resolution ({n}, {hop}): n_fft must be a power of two and hop must divide it"
                ));
            }
        }
        if !(self.mel_weight >= 0.0 && self.stft_weight >= 0.0) {
            return Err("loss weights must be non-negative".into());
        }
        Ok(())
    }
}

/// The loss terms of one batch, each a one-element tensor (in the autodiff graph when the
/// prediction is).
pub struct LossParts {
    pub total: Tensor<1>,
    pub mel_l1: Tensor<1>,
    /// Averages over the resolutions.
    pub sc: Tensor<1>,
    pub log_mag: Tensor<1>,
}

impl LossParts {
    /// `(total, mel_l1, sc, log_mag)` as numbers.
    pub fn values(&self) -> [f64; 4] {
        [&self.total, &self.mel_l1, &self.sc, &self.log_mag].map(|t| t.clone().into_scalar::<f64>())
    }
}

/// The planned loss: windows and filterbank built once.
pub struct ReconstructionLoss {
    cfg: LossConfig,
    resolutions: Vec<SpectralOp>,
    mel_op: SpectralOp,
    log_mel: LogMel,
}

impl ReconstructionLoss {
    /// For audio whose log-mel is `spec` (validated configs).
    pub fn new(cfg: &LossConfig, spec: &SpectrogramConfig, device: &Device) -> Self {
        Self {
            cfg: cfg.clone(),
            resolutions: cfg
                .resolutions
                .iter()
                .map(|&(n, hop)| SpectralOp::new(n, hop, device))
                .collect(),
            mel_op: SpectralOp::new(spec.n_fft, spec.hop_length, device),
            log_mel: LogMel::new(spec, device),
        }
    }

    /// The log-mel of `audio [B, L]`, `[B, T, n_mels]`.
    pub fn log_mel(&self, audio: Tensor<2>) -> Tensor<3> {
        self.log_mel.forward(self.mel_op.power(audio))
    }

    /// Loss of `pred` against `target`, both `[B, L]`; `target_log_mel` (`[B, T, n_mels]`,
    /// musicdiff's log-mel of `target`) is taken as given when the caller has it.
    pub fn forward(
        &self,
        pred: Tensor<2>,
        target: Tensor<2>,
        target_log_mel: Option<Tensor<3>>,
    ) -> LossParts {
        let device = pred.device();
        let target_log_mel = target_log_mel.unwrap_or_else(|| self.log_mel(target.clone()));
        let mel_l1 = (self.log_mel(pred.clone()) - target_log_mel).abs().mean();
        let r = self.resolutions.len().max(1) as f64;
        let mut sc = Tensor::<1>::zeros([1], &device);
        let mut log_mag = Tensor::<1>::zeros([1], &device);
        for op in &self.resolutions {
            let d = stft_distance(op, pred.clone(), op.power(target.clone()));
            sc = sc + d.sc;
            log_mag = log_mag + d.log_mag;
        }
        let (sc, log_mag) = (sc.div_scalar(r), log_mag.div_scalar(r));
        let total = mel_l1.clone().mul_scalar(self.cfg.mel_weight)
            + (sc.clone() + log_mag.clone()).mul_scalar(self.cfg.stft_weight);
        LossParts {
            total,
            mel_l1,
            sc,
            log_mag,
        }
    }
}
