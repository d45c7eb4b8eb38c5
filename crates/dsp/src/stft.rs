//! Short-time Fourier transform and its inverse, numerically as `librosa.stft` /
//! `librosa.istft` (librosa 0.11): periodic Hann window of `win_length` zero-padded and centred
//! in `n_fft`, optional centre padding of the signal with `n_fft / 2` zeros on both sides
//! (librosa's `pad_mode="constant"`), and inverse by weighted overlap-add normalised by the
//! window's sum of squares (Griffin & Lim 1984, eq. 6).
//!
//! FFTs are planned once per [`Stft`] (realfft) and frames are processed in parallel (rayon).
//! The transform is generic over `f32` and `f64`: analysis uses `f64` for librosa-level
//! accuracy, Griffin-Lim uses `f32` for speed.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
/// The complex type of [`Spectrum`] values.
pub use realfft::num_complex::Complex;
use realfft::num_traits::{Float, FloatConst, Zero};
use realfft::{ComplexToReal, FftNum, RealFftPlanner, RealToComplex};

use crate::error::{DspError, Result};
use crate::matrix::Matrix;

/// Floating-point types the transforms run in (`f32`, `f64`).
pub trait Real: FftNum + Float + FloatConst + Send + Sync {}
impl<T: FftNum + Float + FloatConst + Send + Sync> Real for T {}

/// Converts an `f64` constant into `T`.
#[inline]
pub(crate) fn cast<T: Real>(v: f64) -> T {
    T::from(v).expect("every f64 converts to f32/f64")
}

/// Frame geometry of a short-time Fourier transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftConfig {
    /// FFT size; frames have `n_fft / 2 + 1` frequency bins.
    pub n_fft: usize,
    /// Samples between successive frames.
    pub hop_length: usize,
    /// Hann window length, at most `n_fft` (zero-padded to `n_fft`, centred).
    pub win_length: usize,
    /// Pad the signal with `n_fft / 2` zeros on both sides so frame `t` is centred at `t * hop`.
    pub center: bool,
}

impl StftConfig {
    /// Largest FFT accepted; far beyond any audio use, it guards against absurd input.
    pub const MAX_N_FFT: usize = 1 << 16;

    /// `n_fft` with `hop = n_fft / 4`, `win_length = n_fft`, centred: librosa's defaults.
    pub fn new(n_fft: usize, hop_length: usize) -> Self {
        Self {
            n_fft,
            hop_length,
            win_length: n_fft,
            center: true,
        }
    }

    /// Checks that the geometry makes sense.
    pub fn validate(&self) -> Result<()> {
        if self.n_fft < 2 || self.n_fft > Self::MAX_N_FFT {
            return Err(DspError::invalid(
                "n_fft",
                format!("{} is outside 2..={}", self.n_fft, Self::MAX_N_FFT),
            ));
        }
        if self.hop_length == 0 {
            return Err(DspError::invalid("hop", "must be at least 1 sample"));
        }
        if self.hop_length > self.n_fft {
            return Err(DspError::invalid(
                "hop",
                format!(
                    "{} exceeds n_fft {}: frames would skip samples",
                    self.hop_length, self.n_fft
                ),
            ));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return Err(DspError::invalid(
                "win_length",
                format!("{} must be in 1..=n_fft ({})", self.win_length, self.n_fft),
            ));
        }
        Ok(())
    }

    /// Frequency bins per frame, `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames for a signal of `len` samples (as librosa).
    pub fn n_frames(&self, len: usize) -> usize {
        let padded = if self.center {
            len + 2 * (self.n_fft / 2)
        } else {
            len
        };
        if padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop_length
        }
    }
}

/// A complex spectrogram stored frame by frame: `[frames][n_bins]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum<T> {
    pub n_bins: usize,
    pub n_frames: usize,
    /// `n_frames * n_bins` values, frame-major.
    pub data: Vec<Complex<T>>,
}

impl<T: Real> Spectrum<T> {
    /// An all-zero spectrum.
    pub fn zeros(n_bins: usize, n_frames: usize) -> Self {
        Self {
            n_bins,
            n_frames,
            data: vec![Complex::zero(); n_bins * n_frames],
        }
    }

    /// Bins of frame `t`.
    pub fn frame(&self, t: usize) -> &[Complex<T>] {
        &self.data[t * self.n_bins..(t + 1) * self.n_bins]
    }

    /// `|X|` in librosa's layout, `[n_bins, frames]`.
    pub fn magnitude(&self) -> Matrix<T> {
        Matrix::from_vec(
            self.n_frames,
            self.n_bins,
            self.data.iter().map(|c| c.norm()).collect(),
        )
        .transpose()
    }
}

/// Periodic Hann window of `win_length` (scipy `get_window('hann', N, fftbins=True)`),
/// zero-padded and centred in `n_fft` as librosa's `util.pad_center`.
pub fn hann_window<T: Real>(win_length: usize, n_fft: usize) -> Vec<T> {
    let mut w = vec![T::zero(); n_fft];
    let left = (n_fft - win_length) / 2;
    for (n, v) in w[left..left + win_length].iter_mut().enumerate() {
        let phase = 2.0 * std::f64::consts::PI * n as f64 / win_length as f64;
        *v = cast(0.5 - 0.5 * phase.cos());
    }
    w
}

/// A planned STFT: window and FFT plans built once, reused for every call.
pub struct Stft<T: Real> {
    cfg: StftConfig,
    window: Vec<T>,
    r2c: Arc<dyn RealToComplex<T>>,
    /// Planned on first use: analysis-only users never pay for it.
    c2r: OnceLock<Arc<dyn ComplexToReal<T>>>,
}

impl<T: Real> Stft<T> {
    /// Plans the transforms for `cfg` (validated).
    pub fn new(cfg: StftConfig) -> Result<Self> {
        cfg.validate()?;
        let mut planner = RealFftPlanner::<T>::new();
        Ok(Self {
            cfg,
            window: hann_window(cfg.win_length, cfg.n_fft),
            r2c: planner.plan_fft_forward(cfg.n_fft),
            c2r: OnceLock::new(),
        })
    }

    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// The analysis window, `n_fft` long.
    pub fn window(&self) -> &[T] {
        &self.window
    }

    /// Copies frame `t` of `signal` (centre padding applied) times the window into `buf`.
    fn load_frame(&self, signal: &[T], t: usize, buf: &mut [T]) {
        let n_fft = self.cfg.n_fft;
        let offset = if self.cfg.center { n_fft / 2 } else { 0 };
        // Padded index p = t * hop + i maps to signal index p - offset.
        let start = (t * self.cfg.hop_length) as isize - offset as isize;
        if start >= 0 && start as usize + n_fft <= signal.len() {
            // Interior frame: a straight, vectorisable multiply.
            let frame = &signal[start as usize..start as usize + n_fft];
            for ((b, &x), &w) in buf.iter_mut().zip(frame).zip(&self.window) {
                *b = x * w;
            }
            return;
        }
        for (i, (b, w)) in buf.iter_mut().zip(&self.window).enumerate() {
            let s = start + i as isize;
            *b = if s >= 0 && (s as usize) < signal.len() {
                signal[s as usize] * *w
            } else {
                T::zero()
            };
        }
    }

    /// Runs `per_frame(state, bins, out)` on the spectrum of every frame of `signal`, in
    /// parallel, `out` being that frame's `per_frame_len` slots of the output. `init` makes
    /// per-thread scratch `state`. This is the building block for features that never need
    /// the whole complex spectrum.
    pub fn for_each_frame<O, S, I, F>(
        &self,
        signal: &[T],
        out: &mut [O],
        per_frame_len: usize,
        init: I,
        per_frame: F,
    ) where
        O: Send,
        I: Fn() -> S + Sync + Send,
        F: Fn(&mut S, &[Complex<T>], &mut [O]) + Sync + Send,
    {
        let n_frames = self.cfg.n_frames(signal.len());
        assert_eq!(out.len(), n_frames * per_frame_len, "output size mismatch");
        if n_frames == 0 {
            return;
        }
        out.par_chunks_mut(per_frame_len).enumerate().for_each_init(
            || {
                (
                    self.r2c.make_input_vec(),
                    self.r2c.make_output_vec(),
                    self.r2c.make_scratch_vec(),
                    init(),
                )
            },
            |(buf, spec, scratch, state), (t, o)| {
                self.load_frame(signal, t, buf);
                self.r2c
                    .process_with_scratch(buf, spec, scratch)
                    .expect("buffer sizes come from the plan");
                per_frame(state, spec, o);
            },
        );
    }

    /// Complex STFT of `signal`: `[frames][n_fft / 2 + 1]`.
    pub fn forward(&self, signal: &[T]) -> Spectrum<T> {
        let n_bins = self.cfg.n_bins();
        let mut spec = Spectrum::zeros(n_bins, self.cfg.n_frames(signal.len()));
        self.forward_into(signal, &mut spec);
        spec
    }

    /// As [`Stft::forward`], reusing `spec`'s allocation (resized as needed).
    pub fn forward_into(&self, signal: &[T], spec: &mut Spectrum<T>) {
        let n_bins = self.cfg.n_bins();
        spec.n_bins = n_bins;
        spec.n_frames = self.cfg.n_frames(signal.len());
        spec.data.resize(spec.n_frames * n_bins, Complex::zero());
        self.for_each_frame(
            signal,
            &mut spec.data,
            n_bins,
            || (),
            |_, bins, o| o.copy_from_slice(bins),
        );
    }

    /// Inverse STFT by windowed overlap-add. With `length`, the output has exactly that many
    /// samples (zero-padded or cut), as librosa's `istft(length=...)`; without it,
    /// `hop * (frames - 1)` samples when centred.
    pub fn inverse(&self, spec: &Spectrum<T>, length: Option<usize>) -> Vec<T> {
        let mut out = Vec::new();
        let mut frames = Vec::new();
        self.inverse_into(spec, length, &mut out, &mut frames);
        out
    }

    /// As [`Stft::inverse`], reusing the output and the per-frame scratch buffers.
    pub fn inverse_into(
        &self,
        spec: &Spectrum<T>,
        length: Option<usize>,
        out: &mut Vec<T>,
        frames: &mut Vec<T>,
    ) {
        let n_fft = self.cfg.n_fft;
        let hop = self.cfg.hop_length;
        let n_frames = spec.n_frames;
        assert_eq!(
            spec.n_bins,
            self.cfg.n_bins(),
            "spectrum has the wrong bin count"
        );
        let scale = T::one() / cast::<T>(n_fft as f64);
        let c2r = self
            .c2r
            .get_or_init(|| RealFftPlanner::<T>::new().plan_fft_inverse(n_fft));

        // 1. Per-frame inverse FFT times the synthesis window: frames [n_frames][n_fft].
        frames.resize(n_frames * n_fft, T::zero());
        frames
            .par_chunks_mut(n_fft)
            .zip(spec.data.par_chunks(spec.n_bins))
            .for_each_init(
                || (c2r.make_input_vec(), c2r.make_scratch_vec()),
                |(bins, scratch), (frame, src)| {
                    bins.copy_from_slice(src);
                    // A real signal's DC and Nyquist bins are real; numpy's irfft ignores
                    // their imaginary parts, and so do we.
                    bins[0].im = T::zero();
                    let last = bins.len() - 1;
                    if n_fft.is_multiple_of(2) {
                        bins[last].im = T::zero();
                    }
                    c2r.process_with_scratch(bins, frame, scratch)
                        .expect("buffer sizes come from the plan");
                    for (x, w) in frame.iter_mut().zip(&self.window) {
                        *x = *x * *w * scale;
                    }
                },
            );

        // 2. Overlap-add the frames and the squared window.
        let full_len = if n_frames == 0 {
            0
        } else {
            n_fft + hop * (n_frames - 1)
        };
        let mut y = vec![T::zero(); full_len];
        let mut wss = vec![T::zero(); full_len];
        for t in 0..n_frames {
            let at = t * hop;
            for (i, (&f, &w)) in frames[t * n_fft..(t + 1) * n_fft]
                .iter()
                .zip(&self.window)
                .enumerate()
            {
                y[at + i] = y[at + i] + f;
                wss[at + i] = wss[at + i] + w * w;
            }
        }

        // 3. Normalise by the window sum of squares where it is not vanishingly small.
        let tiny = T::min_positive_value();
        for (v, &w) in y.iter_mut().zip(&wss) {
            if w > tiny {
                *v = *v / w;
            }
        }

        // 4. Remove the centre padding and fix the length.
        let start = if self.cfg.center { n_fft / 2 } else { 0 };
        let natural = full_len.saturating_sub(if self.cfg.center { 2 * (n_fft / 2) } else { 0 });
        let len = length.unwrap_or(natural);
        out.clear();
        out.extend(y.iter().skip(start).take(len).copied());
        out.resize(len, T::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_signal(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 22050.0;
                (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 0.5
                    + (2.0 * std::f64::consts::PI * 3000.0 * t).cos() * 0.2
            })
            .collect()
    }

    #[test]
    fn frame_count_matches_librosa() {
        let cfg = StftConfig::new(1024, 256);
        assert_eq!(cfg.n_frames(33075), 1 + 33075 / 256);
        let nc = StftConfig {
            center: false,
            ..cfg
        };
        assert_eq!(nc.n_frames(1000), 0);
        assert_eq!(nc.n_frames(1024 + 256 * 3 + 5), 4);
    }

    #[test]
    fn hann_window_is_periodic_and_centred() {
        let w: Vec<f64> = hann_window(8, 8);
        assert!(w[0].abs() < 1e-15);
        assert!((w[4] - 1.0).abs() < 1e-15);
        assert!((w[2] - 0.5).abs() < 1e-15);
        let padded: Vec<f64> = hann_window(4, 8);
        assert_eq!(padded[0], 0.0);
        assert_eq!(padded[1], 0.0);
        assert!((padded[4] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for (cfg, name) in [
            (StftConfig::new(1024, 0), "hop"),
            (StftConfig::new(1024, 2048), "hop"),
            (StftConfig::new(1, 1), "n_fft"),
            (
                StftConfig {
                    win_length: 2000,
                    ..StftConfig::new(1024, 256)
                },
                "win_length",
            ),
        ] {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn dc_signal_has_energy_only_at_dc_in_the_middle() {
        let stft = Stft::<f64>::new(StftConfig::new(64, 16)).unwrap();
        let spec = stft.forward(&[1.0; 512]);
        let mid = spec.frame(spec.n_frames / 2);
        assert!(
            (mid[0].re - 32.0).abs() < 1e-9,
            "sum of a periodic Hann of 64 is 32"
        );
        assert!(mid[2..].iter().all(|c| c.norm() < 1e-9));
    }

    #[test]
    fn inverse_reconstructs_in_f64_and_f32() {
        let x = test_signal(5000);
        for (n_fft, hop, win) in [(1024, 256, 1024), (512, 128, 400), (256, 100, 256)] {
            let cfg = StftConfig {
                win_length: win,
                ..StftConfig::new(n_fft, hop)
            };
            let stft = Stft::<f64>::new(cfg).unwrap();
            let y = stft.inverse(&stft.forward(&x), Some(x.len()));
            let err = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-10, "n_fft {n_fft}: max error {err}");

            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let s32 = Stft::<f32>::new(cfg).unwrap();
            let y32 = s32.inverse(&s32.forward(&x32), Some(x.len()));
            let err = x32
                .iter()
                .zip(&y32)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "f32 n_fft {n_fft}: max error {err}");
        }
    }
}
