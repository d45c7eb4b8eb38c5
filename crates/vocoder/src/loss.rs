//! The reconstruction loss a vocoder trains on, and which the DiT's conversion term reuses:
//! `L = mel_weight * L_mel + stft_weight * (1/R) sum_r (SC_r + LM_r)`, with `L_mel` the L1
//! between musicdiff log-mels of prediction and target (HiFi-GAN's and Vocos' mel loss, on our
//! own features), and `SC_r`, `LM_r` the spectral convergence and log-magnitude L1 at STFT
//! resolution `r` (Parallel WaveGAN's multi-resolution STFT loss, Yamamoto et al. 2020).
//! Every term compares magnitudes only: the prediction's phase need not match the target's.
//!
//! `magnitude_weight` adds the same SC + log-magnitude distance between the magnitude the
//! network predicts (before any phase is attached) and the target's STFT at the vocoder's own
//! resolution: supervision of the magnitude as such, as Tacotron's post-net is trained to
//! predict a linear spectrogram for Griffin-Lim (Wang et al. 2017). With the waveform terms at
//! zero the phase head is not trained and synthesis takes its phases from the magnitude
//! (`SynthesisPhase::Pghi`); the waveform is then not even built.

use burn::prelude::*;
use musicdiff_dsp::features::SpectrogramConfig;
use serde::{Deserialize, Serialize};

use crate::network::Vocos;
use crate::spectral::{LogMel, SpectralOp, spectrum_distance, stft_distance};

/// Weights and resolutions of the reconstruction loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub mel_weight: f64,
    pub stft_weight: f64,
    /// `(n_fft, hop)` pairs, window = n_fft; hop must divide n_fft.
    pub resolutions: Vec<(usize, usize)>,
    /// Weight of the distance between the predicted magnitude and the target's (0: off).
    #[serde(default)]
    pub magnitude_weight: f64,
}

impl Default for LossConfig {
    /// The resolutions of Vocos' and UnivNet's multi-resolution discriminators (2048, 1024 and
    /// 512 with hop n / 4), mel and STFT terms equally weighted.
    fn default() -> Self {
        Self {
            mel_weight: 1.0,
            stft_weight: 1.0,
            resolutions: vec![(2048, 512), (1024, 256), (512, 128)],
            magnitude_weight: 0.0,
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
        if !(self.mel_weight >= 0.0 && self.stft_weight >= 0.0 && self.magnitude_weight >= 0.0) {
            return Err("loss weights must be non-negative".into());
        }
        if self.mel_weight + self.stft_weight + self.magnitude_weight == 0.0 {
            return Err("every loss weight is zero: nothing would be trained".into());
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
    /// SC + log-magnitude L1 of the predicted magnitude (zero when not computed).
    pub magnitude: Tensor<1>,
}

impl LossParts {
    /// `(total, mel_l1, sc, log_mag, magnitude)` as numbers.
    pub fn values(&self) -> [f64; 5] {
        [
            &self.total,
            &self.mel_l1,
            &self.sc,
            &self.log_mag,
            &self.magnitude,
        ]
        .map(|t| t.clone().into_scalar::<f64>())
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
            magnitude: Tensor::<1>::zeros([1], &device),
        }
    }

    /// The whole loss of `net` on `log_mel [B, T, n_mels]` against `target [B, (T - 1) * hop]`
    /// (whose log-mel `log_mel` is): the waveform terms when weighted or when `always_waveform`
    /// (held-out metrics), and the magnitude term when weighted. One forward pass of `net`.
    pub fn forward_net(
        &self,
        net: &Vocos,
        op: &SpectralOp,
        log_mel: Tensor<3>,
        target: Tensor<2>,
        always_waveform: bool,
    ) -> LossParts {
        let device = target.device();
        let (mag, p) = net.head_outputs(log_mel.clone());
        let waveform = always_waveform || self.cfg.mel_weight > 0.0 || self.cfg.stft_weight > 0.0;
        let mut parts = if waveform {
            let (re, im) = net.spectrum_of(mag.clone(), p);
            let pred = op.istft(re, im, None);
            self.forward(pred, target.clone(), Some(log_mel))
        } else {
            let zero = Tensor::<1>::zeros([1], &device);
            LossParts {
                total: zero.clone(),
                mel_l1: zero.clone(),
                sc: zero.clone(),
                log_mag: zero.clone(),
                magnitude: zero,
            }
        };
        if self.cfg.magnitude_weight > 0.0 || always_waveform {
            // [B, T, bins] predicted against |STFT(target)| at the vocoder's resolution.
            let d = spectrum_distance(mag, self.mel_op.power(target));
            let m = d.sc + d.log_mag;
            parts.total = parts.total + m.clone().mul_scalar(self.cfg.magnitude_weight);
            parts.magnitude = m;
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_with_every_weight_zero_is_refused() {
        let c = LossConfig {
            mel_weight: 0.0,
            stft_weight: 0.0,
            magnitude_weight: 0.0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("zero"));
        let c = LossConfig {
            magnitude_weight: -1.0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = LossConfig {
            mel_weight: 0.0,
            stft_weight: 0.0,
            magnitude_weight: 1.0,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
    }

    /// The magnitude term is zero for the target's own magnitude and grows with an error; a
    /// magnitude-only loss trains on it alone, and held-out scoring still reports the
    /// waveform terms.
    #[test]
    fn the_magnitude_term_measures_the_predicted_magnitude() {
        use crate::config::VocoderConfig;
        let device = Device::flex();
        let spec = SpectrogramConfig::new(22050, 1024, 256, 80);
        let op = SpectralOp::new(1024, 256, &device);
        let audio: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let target = Tensor::<1>::from_floats(audio.as_slice(), &device).reshape([1, 4096]);
        let power = op.power(target.clone());
        let own = spectrum_distance(power.clone().sqrt(), power.clone());
        let own = (own.sc + own.log_mag).into_scalar::<f64>();
        let off = spectrum_distance(power.clone().sqrt().mul_scalar(2.0), power);
        let off = (off.sc + off.log_mag).into_scalar::<f64>();
        // Not exactly 0: the floor differs (clamped prediction, target + eps) in silent bins.
        assert!(own < 0.02, "{own}");
        // Twice the magnitude: SC 1 plus ln 2 wherever the bins are above the floor.
        assert!(off > 1.0 && off < 1.0 + 2f64.ln() + 0.01, "{off}");

        let cfg = LossConfig {
            mel_weight: 0.0,
            stft_weight: 0.0,
            magnitude_weight: 1.0,
            ..Default::default()
        };
        let loss = ReconstructionLoss::new(&cfg, &spec, &device);
        let vcfg = VocoderConfig {
            dim: 16,
            intermediate: 32,
            layers: 1,
            ..crate::tests::tiny()
        };
        let (net, _rng) = crate::tests::seeded_net(&vcfg, 3, &device);
        let mel = loss.log_mel(target.clone());
        let [total, mel_l1, sc, _, magnitude] = loss
            .forward_net(&net, &op, mel.clone(), target.clone(), false)
            .values();
        assert!(magnitude > 0.0 && (total - magnitude).abs() < 1e-9);
        assert_eq!((mel_l1, sc), (0.0, 0.0), "no waveform built");
        let [total2, mel_l1, sc, _, magnitude2] =
            loss.forward_net(&net, &op, mel, target, true).values();
        assert!(mel_l1 > 0.0 && sc > 0.0, "held-out scoring builds it");
        assert!((total2 - total).abs() < 1e-6 && (magnitude2 - magnitude).abs() < 1e-6);
    }
}
