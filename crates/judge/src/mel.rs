//! musicnn's input representation (Pons & Serra, "musicnn: Pre-trained convolutional neural
//! networks for music audio tagging", ISMIR 2019 LBD; `musicnn/extractor.py::batch_data`), for
//! audio already at 16 kHz:
//!
//! 1. `librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96)` as
//!    librosa ≤0.8 computes it: centred frames with the signal **reflect**-padded by 256 samples
//!    on each side (librosa 0.9 switched the default to zeros; musicnn's training features and
//!    its golden reference use reflection), periodic Hann window, power 2, Slaney-scale mel
//!    filters with Slaney (area) norm over 0..8000 Hz, stored as float32;
//! 2. quantised to float16 (`astype(np.float16)`, which is how the training set was stored);
//! 3. `log10(10000 x + 1)` taken in float32 (NumPy 1.x promotes `10000 * f16` to f32).
//!
//! The result is `[T, 96]`, time-major (row t is frame t, column 0 the lowest band), with
//! T = 1 + len / 256 frames. [`patch_starts`] cuts it into the network's 187-frame patches.
//!
//! Numerics (docs/musicnn-port.md §7): the FFT runs in f64 and each bin is rounded to complex64,
//! its magnitude and square to f32, as librosa does for float32 audio; the filterbank weights are
//! rounded to f32 as librosa's `mel(dtype=float32)`; only the filterbank sum is exact (f64) where
//! NumPy's einsum sums in f32 in an order of its own. Differences of that last rounding flip the
//! f16 quantisation of an occasional value by one f16 step.

use half::f16;
use musicdiff_dsp::features::SpectrogramConfig;
use musicdiff_dsp::mel::MelFilterbank;
use musicdiff_dsp::stft::{Stft, StftConfig};

use crate::error::Result;

/// Sample rate of musicnn's input.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size (and window length) in samples.
pub const N_FFT: usize = 512;
/// Hop between frames in samples.
pub const HOP: usize = 256;
/// Mel bands.
pub const N_MELS: usize = 96;
/// Frames in one network input patch: `librosa.time_to_frames(3 s) + 1` = 187 (~2.99 s).
pub const PATCH_FRAMES: usize = 187;
/// Fewest samples that give one whole patch: T = 1 + len / 256 >= 187.
pub const MIN_SAMPLES: usize = (PATCH_FRAMES - 1) * HOP;
/// Largest finite float16; louder mel values are clamped here (NumPy would make them `inf`).
const F16_MAX: f32 = 65504.0;

/// Frames of the mel spectrogram of `len` samples (librosa, centred): 1 + len / 256.
pub fn n_frames(len: usize) -> usize {
    1 + len / HOP
}

/// First frame of every patch of `frames` frames with hop `hop` (musicnn's
/// `range(0, T - 187 + 1, hop)`): the trailing remainder shorter than a patch is dropped, and
/// fewer than 187 frames give no patch.
pub fn patch_starts(frames: usize, hop: usize) -> Vec<usize> {
    assert!(hop > 0, "patch hop must be at least one frame");
    if frames < PATCH_FRAMES {
        return Vec::new();
    }
    (0..=frames - PATCH_FRAMES).step_by(hop).collect()
}

/// Index into a signal of `n` samples of padded position `i` (may be negative or past the end)
/// under NumPy's `pad(mode="reflect")`: mirrored about the end samples, which are not repeated;
/// periodic for pads longer than the signal.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// The planned musicnn log-mel front end.
pub struct MusicnnMel {
    stft: Stft<f64>,
    /// Per band: first FFT bin of its support and its weights there, rounded to f32.
    filters: Vec<(usize, Vec<f64>)>,
}

impl MusicnnMel {
    pub fn new() -> Result<Self> {
        let cfg = SpectrogramConfig::new(SAMPLE_RATE, N_FFT, HOP, N_MELS);
        let bank = MelFilterbank::new(cfg.mel())?;
        let w = bank.weights();
        let filters = (0..N_MELS)
            .map(|m| {
                let row = w.row(m);
                let start = row.iter().position(|&v| v != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&v| v != 0.0).map_or(start, |e| e + 1);
                let taps = row[start..end].iter().map(|&v| v as f32 as f64).collect();
                (start, taps)
            })
            .collect();
        // The frames are cut from the reflect-padded signal by hand, so no centring here.
        let stft = Stft::new(StftConfig {
            center: false,
            ..StftConfig::new(N_FFT, HOP)
        })?;
        Ok(Self { stft, filters })
    }

    /// Mel power spectrogram `[T, 96]` (float32 values, as librosa's), T = 1 + len / 256.
    /// Empty audio gives no frames.
    pub fn mel(&self, audio: &[f32]) -> Vec<f32> {
        if audio.is_empty() {
            return Vec::new();
        }
        let n = audio.len();
        let pad = (N_FFT / 2) as isize;
        // [n + 512] reflect-padded signal, in f64 (NumPy multiplies the f32 frames by the f64
        // window, so the FFT runs in f64).
        let padded: Vec<f64> = (-pad..n as isize + pad)
            .map(|i| audio[reflect(i, n)] as f64)
            .collect();
        let frames = n_frames(n);
        debug_assert_eq!(self.stft.config().n_frames(padded.len()), frames);
        let mut out = vec![0f32; frames * N_MELS];
        self.stft.for_each_frame(
            &padded,
            &mut out,
            N_MELS,
            || Vec::with_capacity(N_FFT / 2 + 1),
            |power: &mut Vec<f32>, bins, o| {
                // librosa stores the STFT as complex64, then |S| and |S|**2 in float32.
                power.clear();
                power.extend(bins.iter().map(|c| {
                    let (re, im) = (c.re as f32, c.im as f32);
                    let mag = (re as f64).hypot(im as f64) as f32;
                    mag * mag
                }));
                for (v, (start, taps)) in o.iter_mut().zip(&self.filters) {
                    let s: f64 = taps
                        .iter()
                        .zip(&power[*start..])
                        .map(|(w, &p)| w * p as f64)
                        .sum();
                    *v = s as f32;
                }
            },
        );
        out
    }

    /// musicnn's input `[T, 96]`: `log10(10000 * f16(mel) + 1)` in f32.
    pub fn log_mel(&self, audio: &[f32]) -> Vec<f32> {
        let mut m = self.mel(audio);
        m.iter_mut().for_each(|v| *v = log_compress(*v));
        m
    }
}

/// `np.log10(10000 * mel.astype(np.float16) + 1)` under NumPy 1.x: the product is float32.
/// Mel values beyond float16's range are clamped to its largest finite value.
pub fn log_compress(mel: f32) -> f32 {
    let q = f16::from_f32(mel.min(F16_MAX)).to_f32();
    (10000.0f32 * q + 1.0).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_is_one_plus_len_over_hop() {
        let mel = MusicnnMel::new().unwrap();
        for len in [1usize, 255, 256, 257, 511, 512, 16_000, MIN_SAMPLES] {
            let m = mel.log_mel(&vec![0.1; len]);
            assert_eq!(m.len(), n_frames(len) * N_MELS, "len {len}");
            assert_eq!(n_frames(len), 1 + len / 256);
        }
        assert_eq!(n_frames(MIN_SAMPLES), PATCH_FRAMES);
        assert_eq!(n_frames(MIN_SAMPLES - 1), PATCH_FRAMES - 1);
        assert!(mel.log_mel(&[]).is_empty());
    }

    #[test]
    fn patches_start_every_hop_and_drop_the_remainder() {
        assert!(patch_starts(186, 187).is_empty());
        assert_eq!(patch_starts(187, 187), [0]);
        // The golden clip: 388 frames, two whole patches, 14 frames dropped.
        assert_eq!(patch_starts(388, 187), [0, 187]);
        // musicnn's input_overlap=1 s is a hop of 61 frames.
        assert_eq!(patch_starts(388, 61), [0, 61, 122, 183]);
        assert_eq!(patch_starts(190, 1), [0, 1, 2, 3]);
    }

    #[test]
    fn reflection_mirrors_about_the_end_samples_like_numpy() {
        // np.pad([0,1,2,3], 3, mode="reflect") = [3,2,1, 0,1,2,3, 2,1,0]
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        // Longer than the signal: periodic, np.pad([0,1,2], 5, "reflect")
        let got: Vec<usize> = (-5..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]);
        assert_eq!(reflect(-4, 1), 0);
    }

    #[test]
    fn edge_frames_see_the_reflection_not_zeros() {
        // A signal silent except near its start: with zero padding frame 0 would see half the
        // burst; with reflection it sees it twice (mirrored), so more energy.
        let mel = MusicnnMel::new().unwrap();
        let mut y = vec![0f32; 4096];
        for (i, v) in y.iter_mut().take(200).enumerate() {
            *v = ((i as f32) * 0.3).sin();
        }
        let m = mel.mel(&y);
        let frame0: f32 = m[..N_MELS].iter().sum();
        let frame1: f32 = m[N_MELS..2 * N_MELS].iter().sum();
        assert!(frame0 > frame1, "{frame0} vs {frame1}");
    }

    #[test]
    fn log_compression_quantises_to_f16_first_and_clamps() {
        assert_eq!(log_compress(0.0), 0.0);
        // 7.0 is exact in f16: log10(70001).
        assert!((log_compress(7.0) - 70001f32.log10()).abs() < 1e-6);
        // 0.1 rounds to f16 819/8192 = 0.0999755859375 before scaling.
        let q = 819.0f32 / 8192.0;
        assert_eq!(log_compress(0.1), (10000.0 * q + 1.0).log10());
        assert!(log_compress(1e9).is_finite());
        assert_eq!(log_compress(1e9), log_compress(65504.0));
    }

    #[test]
    fn a_full_scale_sine_lands_in_its_mel_band() {
        let mel = MusicnnMel::new().unwrap();
        let y: Vec<f32> = (0..16_000)
            .map(|i| (std::f32::consts::TAU * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let m = mel.log_mel(&y);
        let row = &m[30 * N_MELS..31 * N_MELS];
        let peak = (0..N_MELS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        // The band whose filter weighs FFT bin 32 (exactly 1 kHz) most.
        let bank = MelFilterbank::new(SpectrogramConfig::new(16_000, 512, 256, 96).mel()).unwrap();
        let centre = (0..N_MELS)
            .max_by(|&a, &b| {
                let wa = bank.weights().row(a)[32];
                let wb = bank.weights().row(b)[32];
                wa.total_cmp(&wb)
            })
            .unwrap();
        assert!(
            peak.abs_diff(centre) <= 1,
            "peak band {peak}, 1 kHz band {centre}"
        );
        assert!(row[peak] > 3.0, "{}", row[peak]);
    }
}
