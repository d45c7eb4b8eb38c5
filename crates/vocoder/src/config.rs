//! The vocoder's architecture and the spectrogram it reads, as one serde struct stored beside
//! every checkpoint and in every vocoder directory (`vocoder.json`).
//!
//! The iSTFT of the head runs at the spectrogram's own frame rate and size (`n_fft`, `hop`):
//! Vocos (Siuzdak 2023, section 3) predicts one STFT frame per mel frame, so the two cannot
//! differ.

use musicdiff_dsp::features::SpectrogramConfig;
use serde::{Deserialize, Serialize};

/// How the head's second half becomes the STFT phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseHead {
    /// The phase of every frame directly, as Vocos predicts it.
    #[default]
    Direct,
    /// The phase advance from the previous frame (beyond the advance of a sinusoid at the
    /// bin's centre frequency), accumulated over frames: a steady tone keeps a coherent phase
    /// by construction, as a phase vocoder keeps it. The first frame's output is its phase.
    Accumulated,
}

/// Where synthesis takes the STFT phase from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthesisPhase {
    /// The phase head's output, as Vocos synthesises.
    #[default]
    Network,
    /// Phases integrated from the predicted magnitude's gradients
    /// (`musicdiff_dsp::pghi`, Průša et al. 2017); the phase head is not used. Reconstruction
    /// losses alone teach magnitudes far better than phases, and PGHI's phases are nearly
    /// consistent for any magnitude that is.
    Pghi,
}

/// Architecture of a Vocos-style vocoder over musicdiff's log-mel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderConfig {
    /// The log-mel the vocoder reads (musicdiff's definition: Slaney mels, power 2,
    /// `ln(max(mel, 1e-5))`) and, through `n_fft` and `hop_length`, the STFT it writes.
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    /// Width of the ConvNeXt backbone.
    pub dim: usize,
    /// Hidden width of each block's pointwise MLP.
    pub intermediate: usize,
    /// ConvNeXt blocks.
    pub layers: usize,
    /// Kernel of the input embedding and of every depthwise convolution (odd).
    pub kernel: usize,
    /// How the phase is predicted.
    #[serde(default)]
    pub phase: PhaseHead,
    /// Fast Griffin-Lim iterations at synthesis, seeded with the spectrum synthesis starts
    /// from (its magnitudes the target, its phases the start): they make the predicted phases more
    /// consistent across overlapping frames. 0 (the default) is the plain iSTFT, as Vocos.
    /// Synthesis only: training and its metrics see the network's own output.
    #[serde(default)]
    pub refine_iters: usize,
    /// Where synthesis takes the phase from (default: the network). Synthesis only, like
    /// `refine_iters`.
    #[serde(default)]
    pub synthesis_phase: SynthesisPhase,
    /// Multiplicative updates that fit each frame's predicted power to the input's mel
    /// energies before the phase is attached (`MelFilterbank::fit_power`); 0 (the default)
    /// keeps the prediction as it is. Synthesis only.
    #[serde(default)]
    pub mel_fit_iters: usize,
}

impl VocoderConfig {
    /// Most refinement iterations accepted: past a few dozen the network's phases are
    /// forgotten and this is Griffin-Lim.
    pub const MAX_REFINE_ITERS: usize = 64;

    /// The log-mel definition the vocoder reads.
    pub fn spectrogram(&self) -> SpectrogramConfig {
        SpectrogramConfig::new(self.sample_rate, self.n_fft, self.hop_length, self.n_mels)
    }

    /// Frequency bins of the predicted STFT.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames on either side of a frame that reach its output: the embedding and every block
    /// convolve over `kernel` frames.
    pub fn receptive_frames(&self) -> usize {
        (self.layers + 1) * (self.kernel / 2)
    }

    /// Per bin, the phase a sinusoid at the bin's centre frequency advances over one hop,
    /// reduced mod 2 pi: `2 pi ((k hop) mod n_fft) / n_fft`.
    pub fn bin_advance(&self) -> Vec<f64> {
        (0..self.n_bins())
            .map(|k| {
                std::f64::consts::TAU * ((k * self.hop_length) % self.n_fft) as f64
                    / self.n_fft as f64
            })
            .collect()
    }

    /// Multiply-accumulates per frame of the forward pass (embedding, blocks, head), the
    /// figure behind the speed estimates of `docs/vocoder-design.md`.
    pub fn macs_per_frame(&self) -> usize {
        let (d, h) = (self.dim, self.intermediate);
        self.n_mels * d * self.kernel
            + self.layers * (self.kernel * d + 2 * d * h)
            + d * (self.n_fft + 2)
    }

    /// A readable refusal of sizes the network cannot be built with.
    pub fn validate(&self) -> Result<(), String> {
        self.spectrogram().validate().map_err(|e| e.to_string())?;
        if !self.n_fft.is_power_of_two() {
            return Err(format!(
                "n_fft {} must be a power of two (the iSTFT's inverse FFT)",
                self.n_fft
            ));
        }
        if self.hop_length == 0 || !self.n_fft.is_multiple_of(self.hop_length) {
            return Err(format!(
                "hop_length {} must divide n_fft {} (frames are overlap-added in hop-sized blocks)",
                self.hop_length, self.n_fft
            ));
        }
        if self.dim == 0 || self.intermediate == 0 || self.layers == 0 {
            return Err("dim, intermediate and layers must be at least 1".into());
        }
        if self.kernel == 0 || self.kernel.is_multiple_of(2) {
            return Err(format!("kernel {} must be odd", self.kernel));
        }
        if self.mel_fit_iters > Self::MAX_REFINE_ITERS {
            return Err(format!(
                "mel_fit_iters {} is above {}",
                self.mel_fit_iters,
                Self::MAX_REFINE_ITERS
            ));
        }
        if self.refine_iters > Self::MAX_REFINE_ITERS {
            return Err(format!(
                "refine_iters {} is above {} (each costs an STFT and an iSTFT)",
                self.refine_iters,
                Self::MAX_REFINE_ITERS
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> VocoderConfig {
        VocoderConfig {
            sample_rate: 22050,
            n_fft: 1024,
            hop_length: 256,
            n_mels: 80,
            dim: 256,
            intermediate: 768,
            layers: 8,
            kernel: 7,
            phase: PhaseHead::Direct,
            refine_iters: 0,
            synthesis_phase: Default::default(),
            mel_fit_iters: 0,
        }
    }

    #[test]
    fn macs_match_the_design_notes_count() {
        // docs/vocoder-design.md section 2.4: 3.57 M MAC per frame for 256 / 768 / 8.
        assert_eq!(small().macs_per_frame(), 3_566_080);
        assert_eq!(small().receptive_frames(), 27);
    }

    #[test]
    fn sizes_that_cannot_be_built_are_refused_with_the_reason() {
        let mut c = small();
        c.kernel = 6;
        assert!(c.validate().unwrap_err().contains("odd"));
        let mut c = small();
        c.hop_length = 300;
        assert!(c.validate().unwrap_err().contains("divide"));
        let mut c = small();
        c.n_fft = 1000;
        c.hop_length = 250;
        assert!(c.validate().unwrap_err().contains("power of two"));
        let mut c = small();
        c.refine_iters = 65;
        assert!(c.validate().unwrap_err().contains("refine_iters"));
        assert!(small().validate().is_ok());
    }
}
