//! Spectrogram to waveform: mel -> linear magnitude (non-negative least squares, as librosa's
//! `mel_to_stft`) and the fast Griffin-Lim phase reconstruction of Perraudin, Balazs &
//! Søndergaard, "A fast Griffin-Lim algorithm" (WASPAA 2013), in the form librosa 0.11's
//! `griffinlim` implements (momentum on the previous projection, default 0.99).

use crate::error::{DspError, Result};
use crate::features::SpectrogramConfig;
use crate::matrix::Matrix;
use crate::mel::MelFilterbank;
use crate::stft::{Real, Spectrum, Stft, cast};
use realfft::num_complex::Complex;

/// How the phase is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseInit {
    /// All phases zero (librosa `init=None`); fully deterministic.
    Zero,
    /// Uniform random phases from a seeded generator (librosa's default `init="random"`).
    Random { seed: u64 },
    /// Phases integrated from the magnitude's gradients ([`crate::pghi`], Průša et al. 2017):
    /// already nearly consistent, so few iterations are needed; deterministic.
    Pghi,
}

/// Griffin-Lim parameters. Defaults: 32 iterations, momentum 0.99, random phase with seed 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GriffinLimConfig {
    pub n_iter: usize,
    /// Fast Griffin-Lim's alpha; 0 gives the original algorithm.
    pub momentum: f32,
    pub init: PhaseInit,
}

impl Default for GriffinLimConfig {
    fn default() -> Self {
        Self {
            n_iter: 32,
            momentum: 0.99,
            init: PhaseInit::Random { seed: 0 },
        }
    }
}

impl GriffinLimConfig {
    /// Most iterations accepted; more buys nothing and guards against typos.
    pub const MAX_ITER: usize = 10_000;

    pub fn validate(&self) -> Result<()> {
        if self.n_iter > Self::MAX_ITER {
            return Err(DspError::invalid(
                "iters",
                format!("{} is above the maximum of {}", self.n_iter, Self::MAX_ITER),
            ));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(DspError::invalid(
                "momentum",
                format!("{} must be in [0, 1)", self.momentum),
            ));
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, well-mixed generator for reproducible phases.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Frames whose complex STFT is known: Griffin-Lim starts them from these values and puts them
/// back after every projection, so the phase of the free frames grows consistent with the
/// known audio around them (spectrogram in-painting; the known frames reproduce the original
/// signal wherever only they overlap).
#[derive(Debug, Clone, Copy)]
pub struct Anchor<'a, T> {
    /// The known complex STFT, `frames x n_bins` like the magnitude's transpose.
    pub spectrum: &'a Spectrum<T>,
    /// Per frame: true where `spectrum` is kept.
    pub frames: &'a [bool],
}

/// Reconstructs `length` samples whose STFT magnitude approximates `magnitude`
/// (`[n_bins, frames]`, as librosa). `on_iter(i)` is called after iteration `i` (1-based) for
/// progress reporting. Runs in `f32` for speed or `f64` for exactness.
pub fn griffin_lim<T: Real>(
    stft: &Stft<T>,
    magnitude: &Matrix<T>,
    length: usize,
    cfg: &GriffinLimConfig,
    on_iter: &mut dyn FnMut(usize),
) -> Result<Vec<T>> {
    griffin_lim_anchored(stft, magnitude, length, cfg, None, on_iter)
}

/// [`griffin_lim`] with some frames fixed to known complex values (see [`Anchor`]).
pub fn griffin_lim_anchored<T: Real>(
    stft: &Stft<T>,
    magnitude: &Matrix<T>,
    length: usize,
    cfg: &GriffinLimConfig,
    anchor: Option<Anchor<'_, T>>,
    on_iter: &mut dyn FnMut(usize),
) -> Result<Vec<T>> {
    cfg.validate()?;
    let n_bins = stft.config().n_bins();
    if magnitude.rows() != n_bins {
        return Err(DspError::invalid(
            "magnitude",
            format!(
                "has {} rows but n_fft {} gives {n_bins} bins",
                magnitude.rows(),
                stft.config().n_fft
            ),
        ));
    }
    let frames = magnitude.cols();
    if let Some(a) = &anchor
        && (a.frames.len() != frames || a.spectrum.data.len() != frames * n_bins)
    {
        return Err(DspError::invalid(
            "anchor",
            format!(
                "covers {} frames ({} values) but the magnitude has {frames} frames of {n_bins} bins",
                a.frames.len(),
                a.spectrum.data.len()
            ),
        ));
    }
    // Puts the known frames back into `angles`.
    let pin = |angles: &mut Spectrum<T>| {
        if let Some(a) = &anchor {
            for (f, _) in a.frames.iter().enumerate().filter(|(_, k)| **k) {
                let r = f * n_bins..(f + 1) * n_bins;
                angles.data[r.clone()].copy_from_slice(&a.spectrum.data[r]);
            }
        }
    };
    // S: magnitudes frame-major [frames][n_bins], the layout of Spectrum.
    let s = magnitude.transpose();
    let s = s.as_slice();

    // 1. Initial phases, with the magnitudes absorbed: angles = S * e^{i phi}.
    let mut angles = Spectrum::<T>::zeros(n_bins, frames);
    match cfg.init {
        PhaseInit::Zero => {
            for (a, &m) in angles.data.iter_mut().zip(s) {
                *a = Complex::new(m, T::zero());
            }
        }
        PhaseInit::Random { seed } => {
            let mut state = seed;
            for (a, &m) in angles.data.iter_mut().zip(s) {
                let u = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                *a = Complex::from_polar(m, cast(2.0 * std::f64::consts::PI * u));
            }
        }
        PhaseInit::Pghi => {
            angles = crate::pghi::pghi(s, frames, stft.config(), crate::pghi::DEFAULT_TOL)?;
        }
    }

    pin(&mut angles);
    Ok(iterate(
        stft,
        s,
        angles,
        length,
        cfg.n_iter,
        cfg.momentum,
        &pin,
        on_iter,
    ))
}

/// Griffin-Lim seeded with a whole complex STFT (`initial`, e.g. a neural vocoder's predicted
/// spectrum): its magnitudes are the target and its phases the starting point, so a few
/// iterations make a nearly consistent estimate consistent rather than starting from noise
/// (phase refinement as in Deep Griffin-Lim, Masuyama et al. 2019, without the network).
/// `cfg.init` is unused; zero iterations give the plain inverse STFT of `initial`.
pub fn griffin_lim_seeded<T: Real>(
    stft: &Stft<T>,
    initial: Spectrum<T>,
    length: usize,
    cfg: &GriffinLimConfig,
    on_iter: &mut dyn FnMut(usize),
) -> Result<Vec<T>> {
    cfg.validate()?;
    let n_bins = stft.config().n_bins();
    if initial.n_bins != n_bins || initial.data.len() != initial.n_frames * n_bins {
        return Err(DspError::invalid(
            "initial",
            format!(
                "has {} bins x {} frames ({} values) but n_fft {} gives {n_bins} bins",
                initial.n_bins,
                initial.n_frames,
                initial.data.len(),
                stft.config().n_fft
            ),
        ));
    }
    // S: the seed's magnitudes, frame-major like the spectrum itself.
    let s: Vec<T> = initial.data.iter().map(|c| c.norm()).collect();
    Ok(iterate(
        stft,
        &s,
        initial,
        length,
        cfg.n_iter,
        cfg.momentum,
        &|_| {},
        on_iter,
    ))
}

/// Steps 2-4 of fast Griffin-Lim from `angles` (= S e^{i phi}, frame-major): `n_iter`
/// projections with momentum, `pin` re-applied after each, then the final synthesis.
#[allow(clippy::too_many_arguments)]
fn iterate<T: Real>(
    stft: &Stft<T>,
    s: &[T],
    mut angles: Spectrum<T>,
    length: usize,
    n_iter: usize,
    momentum: f32,
    pin: &dyn Fn(&mut Spectrum<T>),
    on_iter: &mut dyn FnMut(usize),
) -> Vec<T> {
    let (n_bins, frames) = (angles.n_bins, angles.n_frames);
    let momentum = momentum as f64;
    let alpha: T = cast(momentum / (1.0 + momentum));
    let eps = T::min_positive_value();
    let mut inverse = Vec::with_capacity(length);
    let mut ola_scratch = Vec::new();
    let mut rebuilt = Spectrum::<T>::zeros(n_bins, frames);
    let mut previous = Spectrum::<T>::zeros(n_bins, frames);
    for i in 0..n_iter {
        // 2. Project onto consistent spectrograms: x = istft(angles); rebuilt = stft(x).
        stft.inverse_into(&angles, Some(length), &mut inverse, &mut ola_scratch);
        stft.forward_into(&inverse, &mut rebuilt);
        // 3. Momentum step and magnitude projection:
        //    angles = S * u / |u|  with  u = rebuilt - alpha * previous rebuilt.
        let first = i == 0;
        for ((a, r), (p, &m)) in angles
            .data
            .iter_mut()
            .zip(&rebuilt.data)
            .zip(previous.data.iter().zip(s))
        {
            let u = if first { *r } else { *r - *p * alpha };
            *a = u * (m / (u.norm() + eps));
        }
        pin(&mut angles);
        std::mem::swap(&mut rebuilt, &mut previous);
        on_iter(i + 1);
    }
    // 4. Final synthesis with the last phase estimate.
    stft.inverse_into(&angles, Some(length), &mut inverse, &mut ola_scratch);
    inverse
}

/// Log-mel `[n_mels, frames]` back to audio: exp (clamped bins come back as the floor value),
/// NNLS to linear `|STFT|^power`, the `power`-th root to magnitude, then Griffin-Lim.
/// `length` defaults to `hop * (frames - 1)` samples. `on_stage` reports progress.
pub fn log_mel_to_audio(
    cfg: &SpectrogramConfig,
    filterbank: &MelFilterbank,
    log_mel: &Matrix<f32>,
    length: Option<usize>,
    gl: &GriffinLimConfig,
    on_stage: &mut dyn FnMut(Stage),
) -> Result<Vec<f32>> {
    let magnitude = log_mel_to_magnitude(cfg, filterbank, log_mel)?;
    on_stage(Stage::MelInverted);
    let stft = Stft::<f32>::new(cfg.stft())?;
    let length = length.unwrap_or(cfg.hop_length * log_mel.cols().saturating_sub(1));
    griffin_lim(&stft, &magnitude, length, gl, &mut |i| {
        on_stage(Stage::Iteration(i))
    })
}

/// Progress of [`log_mel_to_audio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The mel -> linear solve is done.
    MelInverted,
    /// Griffin-Lim iteration `n` (1-based) is done.
    Iteration(usize),
}

/// NNLS iterations used by [`log_mel_to_magnitude`].
pub const NNLS_ITERATIONS: usize = 100;

/// Log-mel `[n_mels, frames]` -> linear STFT magnitude `[n_bins, frames]`.
pub fn log_mel_to_magnitude(
    cfg: &SpectrogramConfig,
    filterbank: &MelFilterbank,
    log_mel: &Matrix<f32>,
) -> Result<Matrix<f32>> {
    if log_mel.rows() != filterbank.n_mels() {
        return Err(DspError::invalid(
            "log_mel",
            format!(
                "has {} rows but the filterbank has {} mels",
                log_mel.rows(),
                filterbank.n_mels()
            ),
        ));
    }
    let mel = log_mel.map(|&v| (v as f64).exp());
    let linear = filterbank.nnls(&mel, NNLS_ITERATIONS);
    let inv_power = 1.0 / cfg.power;
    Ok(linear.map(|&v| v.powf(inv_power) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stft::StftConfig;

    #[test]
    fn splitmix_is_deterministic_and_spread() {
        let (mut a, mut b) = (42u64, 42u64);
        let xs: Vec<u64> = (0..4).map(|_| splitmix64(&mut a)).collect();
        let ys: Vec<u64> = (0..4).map(|_| splitmix64(&mut b)).collect();
        assert_eq!(xs, ys);
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn anchored_frames_reproduce_the_known_audio() {
        let (n_fft, hop) = (512, 128);
        let stft = Stft::<f32>::new(StftConfig::new(n_fft, hop)).unwrap();
        let x: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin() * 0.4)
            .collect();
        let spec = stft.forward(&x);
        let mag = spec.magnitude();
        // The first half of the frames known, the rest left to Griffin-Lim.
        let known: Vec<bool> = (0..spec.n_frames).map(|f| f < spec.n_frames / 2).collect();
        let anchor = Anchor {
            spectrum: &spec,
            frames: &known,
        };
        let cfg = GriffinLimConfig::default();
        let y =
            griffin_lim_anchored(&stft, &mag, x.len(), &cfg, Some(anchor), &mut |_| {}).unwrap();
        // Samples covered only by known frames come back to rounding error.
        let last_known = spec.n_frames / 2 - 1;
        let safe = last_known * hop + hop - n_fft / 2;
        let err = x[..safe]
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "known region error {err}");
        let free = griffin_lim(&stft, &mag, x.len(), &cfg, &mut |_| {}).unwrap();
        let err_free = x[..safe]
            .iter()
            .zip(&free)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err_free > 0.05,
            "unanchored phase should differ: {err_free}"
        );
        // A mis-sized anchor is refused.
        let short = vec![true; 3];
        let bad = Anchor {
            spectrum: &spec,
            frames: &short,
        };
        assert!(griffin_lim_anchored(&stft, &mag, x.len(), &cfg, Some(bad), &mut |_| {}).is_err());
    }

    /// A seed close to the truth (the true spectrum with its phases jittered, as a vocoder's
    /// estimate is) needs few iterations: after 4 it is far closer to consistent than 4
    /// iterations from random phases, and refining lowers its error; a mis-sized seed is
    /// refused.
    #[test]
    fn a_seeded_start_beats_random_phases_at_equal_iterations() {
        let stft = Stft::<f32>::new(StftConfig::new(512, 128)).unwrap();
        let x: Vec<f32> = (0..8000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                ((2.0 * std::f32::consts::PI * 330.0 * t).sin()
                    + 0.5 * (2.0 * std::f32::consts::PI * 1250.0 * t).sin())
                    * 0.3
            })
            .collect();
        let spec = stft.forward(&x);
        let mag = spec.magnitude();
        let mut state = 7u64;
        let mut seed = spec.clone();
        for c in &mut seed.data {
            let u = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            *c *= Complex::from_polar(1.0, (0.8 * (u - 0.5)) as f32);
        }
        let sc =
            |y: &[f32]| crate::metrics::spectral_convergence(&mag, &stft.forward(y).magnitude());
        let cfg = |n_iter| GriffinLimConfig {
            n_iter,
            ..Default::default()
        };
        let plain = griffin_lim_seeded(&stft, seed.clone(), x.len(), &cfg(0), &mut |_| {}).unwrap();
        let refined =
            griffin_lim_seeded(&stft, seed.clone(), x.len(), &cfg(4), &mut |_| {}).unwrap();
        let random = griffin_lim(&stft, &mag, x.len(), &cfg(4), &mut |_| {}).unwrap();
        let (sc0, sc4, sc_random) = (sc(&plain), sc(&refined), sc(&random));
        assert!(sc4 < sc0, "refining should help: {sc0} -> {sc4}");
        assert!(sc4 < 0.5 * sc_random, "seeded {sc4} vs random {sc_random}");
        let mut bad = seed;
        bad.n_bins -= 1;
        assert!(griffin_lim_seeded(&stft, bad, x.len(), &cfg(4), &mut |_| {}).is_err());
    }

    #[test]
    fn griffin_lim_lowers_spectral_convergence_with_iterations() {
        let stft = Stft::<f32>::new(StftConfig::new(512, 128)).unwrap();
        let x: Vec<f32> = (0..8000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                (2.0 * std::f32::consts::PI * 330.0 * t).sin()
                    * (1.0 + (2.0 * std::f32::consts::PI * 3.0 * t).sin())
                    * 0.3
            })
            .collect();
        let spec = stft.forward(&x);
        let mag = spec.magnitude();
        let sc = |iters: usize| {
            let cfg = GriffinLimConfig {
                n_iter: iters,
                ..Default::default()
            };
            let y = griffin_lim(&stft, &mag, x.len(), &cfg, &mut |_| {}).unwrap();
            let est = stft.forward(&y);
            let est_mag = est.magnitude();
            crate::metrics::spectral_convergence(&mag, &est_mag)
        };
        let (few, many) = (sc(2), sc(32));
        assert!(many < few * 0.5, "2 iters: {few}, 32 iters: {many}");
        assert!(
            many < 0.1,
            "32 iterations should reconstruct a tone well: {many}"
        );
    }

    #[test]
    fn wrong_shapes_and_parameters_are_errors() {
        let stft = Stft::<f32>::new(StftConfig::new(64, 16)).unwrap();
        let mag = Matrix::<f32>::zeros(10, 4);
        assert!(griffin_lim(&stft, &mag, 100, &GriffinLimConfig::default(), &mut |_| {}).is_err());
        let bad = GriffinLimConfig {
            momentum: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
