//! Phase from STFT magnitude without iterations: Phase Gradient Heap Integration (Průša,
//! Balazs & Søndergaard, "A Noniterative Method for Reconstruction of Phase From STFT
//! Magnitude", IEEE/ACM TASLP 25(5), 2017).
//!
//! For a Gaussian window the log-magnitude and the phase of the STFT are harmonic conjugates
//! (the STFT times a Gaussian is analytic in `tau / sigma^2 - i omega`), so both partial
//! derivatives of the phase follow from those of the log-magnitude. With the phase referred to
//! each window's centre (time `tau` and frequency `omega` in samples and radians per sample):
//!
//! ```text
//! d phi / d tau   =  (1 / sigma^2) d ln|X| / d omega + omega     (instantaneous frequency)
//! d phi / d omega = -sigma^2      d ln|X| / d tau                 (local group delay)
//! ```
//!
//! A Hann window of length `L` is treated as the Gaussian with `sigma^2 = 0.25645 L^2 / (2 pi)`
//! (the paper's `gamma = 0.25645 L^2`, with `lambda = gamma = 2 pi sigma^2`). The derivatives
//! are central differences of the log-magnitude; the phase is then integrated bin to bin
//! (trapezoidal rule), always expanding from the loudest bin reached so far (a max-queue), so the
//! phase of loud, reliable regions propagates into quieter ones and never the other way round.
//! Bins more than `tol` below the loudest are left at phase zero: they carry no energy that
//! matters and their gradients are noise.
//!
//! The result is a starting point for Griffin-Lim (`griffin_lim_seeded`) that is already
//! coherent across frames for tones and across bins for onsets, which random phases are not.

use std::f64::consts::{PI, TAU};

use rayon::prelude::*;

use crate::error::{DspError, Result};
use crate::stft::{Real, Spectrum, StftConfig, cast};
use realfft::num_complex::Complex;

/// The paper's window constant for a Hann window: `gamma = HANN_GAMMA * L^2`.
pub const HANN_GAMMA: f64 = 0.25645;

/// Relative magnitude below which bins get no integrated phase (about -100 dB).
pub const DEFAULT_TOL: f64 = 1e-5;

/// A complex spectrum whose magnitudes are `magnitude` (frame-major, `n_frames x n_bins` of
/// `cfg`'s STFT) and whose phases come from phase gradient heap integration, in the
/// convention of [`crate::stft::Stft`] (each frame's phase referred to its first sample), so
/// that its inverse STFT or `griffin_lim_seeded` can use it directly.
pub fn pghi<T: Real>(
    magnitude: &[T],
    n_frames: usize,
    cfg: &StftConfig,
    tol: f64,
) -> Result<Spectrum<T>> {
    cfg.validate()?;
    let n_bins = cfg.n_bins();
    if magnitude.len() != n_frames * n_bins {
        return Err(DspError::invalid(
            "magnitude",
            format!(
                "has {} values but {n_frames} frames x {n_bins} bins need {}",
                magnitude.len(),
                n_frames * n_bins
            ),
        ));
    }
    if !(tol > 0.0 && tol < 1.0) {
        return Err(DspError::invalid("tol", format!("{tol} must be in (0, 1)")));
    }
    let mag: Vec<f64> = magnitude
        .iter()
        .map(|&m| {
            let m = m.to_f64().unwrap_or(0.0);
            if m.is_finite() { m.max(0.0) } else { 0.0 }
        })
        .collect();
    let phase = integrate(&mag, n_frames, cfg, tol);
    // Refer each frame's phase to its first sample, as the STFT does: the window's centre
    // sits n_fft / 2 samples in, so bin k turns by -omega_k n_fft / 2 = -pi k.
    let data = mag
        .par_iter()
        .zip(&phase)
        .enumerate()
        .map(|(i, (&m, &p))| {
            // Wrapped in f64 (floor, not the far slower fmod of rem_euclid), then sine and
            // cosine in f32 (the spectrum's precision is f32's).
            let k = i % n_bins;
            let x = p - PI * k as f64;
            let (sin, cos) = ((x - TAU * (x / TAU).floor()) as f32).sin_cos();
            let m = m as f32;
            Complex::new(cast(f64::from(m * cos)), cast(f64::from(m * sin)))
        })
        .collect();
    Ok(Spectrum {
        n_bins,
        n_frames,
        data,
    })
}

/// Steps 1-3 of PGHI, phases referred to the window centres (frame-major, radians).
fn integrate(mag: &[f64], n_frames: usize, cfg: &StftConfig, tol: f64) -> Vec<f64> {
    let n_bins = cfg.n_bins();
    let n = mag.len();
    let mut phase = vec![0.0f64; n];
    let max = mag.iter().cloned().fold(0.0f64, f64::max);
    if n == 0 || max <= 0.0 {
        return phase;
    }
    let (a, n_fft) = (cfg.hop_length as f64, cfg.n_fft as f64);
    let sigma2 = HANN_GAMMA * (cfg.win_length as f64).powi(2) / TAU;
    let d_omega = TAU / n_fft;

    // 1. Log-magnitude, floored where the integration stops caring.
    let floor = (max * tol).ln();
    let log: Vec<f64> = mag.par_iter().map(|&m| m.ln().max(floor)).collect();

    // 2. Phase advance per frame (time direction) and per bin (frequency direction).
    //    [n_frames * n_bins] each, frame-major; frames in parallel.
    let mut per_frame = vec![0.0f64; n];
    let mut per_bin = vec![0.0f64; n];
    per_frame
        .par_chunks_mut(n_bins)
        .zip(per_bin.par_chunks_mut(n_bins))
        .enumerate()
        .for_each(|(t, (pf, pb))| {
            let at = |t: usize, k: usize| log[t * n_bins + k];
            for k in 0..n_bins {
                // d ln|X| / d omega by central differences; the spectrum of a real signal is
                // symmetric about bins 0 and n_fft / 2, so the derivative is zero there.
                let dl_domega = if k == 0 || k + 1 == n_bins {
                    0.0
                } else {
                    (at(t, k + 1) - at(t, k - 1)) / (2.0 * d_omega)
                };
                pf[k] = a * (dl_domega / sigma2 + d_omega * k as f64);
                // d ln|X| / d tau: central inside, one-sided at the ends.
                let dl_dtau = if n_frames < 2 {
                    0.0
                } else if t == 0 {
                    (at(1, k) - at(0, k)) / a
                } else if t + 1 == n_frames {
                    (at(t, k) - at(t - 1, k)) / a
                } else {
                    (at(t + 1, k) - at(t - 1, k)) / (2.0 * a)
                };
                pb[k] = -sigma2 * dl_dtau * d_omega;
            }
        });

    // 3. Integration from the loudest bin reached so far; bins below the tolerance stay at
    //    zero. The max-heap is a bucket queue over the log-magnitude (BUCKETS levels between
    //    the loudest bin and the tolerance, about 0.1 dB each): pushes are O(1) and pops
    //    amortised O(1). Frames go in blocks of BLOCK_FRAMES, each seeded with the finished
    //    last frame of the block before (as real-time PGHI seeds each frame with the previous
    //    one), so the working set stays in cache; within a block it is the paper's algorithm.
    let range = -tol.ln();
    let threshold = max * tol;
    let levels: Vec<u16> = log
        .iter()
        .map(|&l| {
            let x = (l - floor) / range * (BUCKETS - 1) as f64;
            (x.max(0.0) as usize).min(BUCKETS - 1) as u16
        })
        .collect();
    let mut done: Vec<bool> = mag.iter().map(|&m| m < threshold).collect();
    let mut queue = BucketQueue::new();
    let mut count = vec![0usize; BUCKETS + 1];
    let mut order = Vec::new();
    for t0 in (0..n_frames).step_by(BLOCK_FRAMES) {
        let t1 = (t0 + BLOCK_FRAMES).min(n_frames);
        let block = t0 * n_bins..t1 * n_bins;
        // 3.1 The block's bins above the tolerance, loudest level first (a counting sort):
        //     the starts of islands no earlier phase reaches.
        count.iter_mut().for_each(|c| *c = 0);
        for i in block.clone().filter(|&i| !done[i]) {
            count[BUCKETS - levels[i] as usize] += 1;
        }
        for b in 1..=BUCKETS {
            count[b] += count[b - 1];
        }
        order.clear();
        order.resize(count[BUCKETS], 0u32);
        for i in block.clone().filter(|&i| !done[i]) {
            let slot = &mut count[BUCKETS - 1 - levels[i] as usize];
            order[*slot] = i as u32;
            *slot += 1;
        }
        // 3.2 Seeds: the previous block's last frame, whose phases are final.
        if t0 > 0 {
            for i in (t0 - 1) * n_bins..t0 * n_bins {
                if mag[i] >= threshold {
                    queue.push(levels[i] as usize, i as u32);
                }
            }
        }
        // 3.3 Expand from the loudest reached bin; a new island when nothing is reached.
        let mut starts = order.iter();
        loop {
            let i = match queue.pop() {
                Some(i) => i as usize,
                None => match starts.by_ref().map(|&s| s as usize).find(|&s| !done[s]) {
                    Some(s) => {
                        // A new island: its loudest bin keeps phase zero.
                        done[s] = true;
                        s
                    }
                    None => break,
                },
            };
            let (t, k) = (i / n_bins, i % n_bins);
            let mut visit = |j: usize, step: f64| {
                if !done[j] {
                    done[j] = true;
                    phase[j] = phase[i] + step;
                    queue.push(levels[j] as usize, j as u32);
                }
            };
            if t + 1 < t1 {
                let j = i + n_bins;
                visit(j, 0.5 * (per_frame[i] + per_frame[j]));
            }
            if t > t0 {
                let j = i - n_bins;
                visit(j, -0.5 * (per_frame[i] + per_frame[j]));
            }
            if t >= t0 {
                if k + 1 < n_bins {
                    let j = i + 1;
                    visit(j, 0.5 * (per_bin[i] + per_bin[j]));
                }
                if k > 0 {
                    let j = i - 1;
                    visit(j, -0.5 * (per_bin[i] + per_bin[j]));
                }
            }
        }
    }
    phase
}

/// Levels of the bucket queue between the tolerance and the loudest bin.
const BUCKETS: usize = 1024;

/// Frames integrated together (64 frames of 513 bins: a few hundred KB of working set).
const BLOCK_FRAMES: usize = 64;

/// A max-priority queue over `BUCKETS` integer levels (last in, first out within a level).
struct BucketQueue {
    buckets: Vec<Vec<u32>>,
    /// No bucket above this one holds anything.
    top: usize,
    /// Items held: an empty queue answers at once instead of walking down to level 0 (that
    /// walk after every small island cost more than the integration itself).
    len: usize,
}

impl BucketQueue {
    fn new() -> Self {
        Self {
            buckets: vec![Vec::new(); BUCKETS],
            top: 0,
            len: 0,
        }
    }

    fn push(&mut self, level: usize, item: u32) {
        self.buckets[level].push(item);
        self.top = self.top.max(level);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            self.top = 0;
            return None;
        }
        self.len -= 1;
        loop {
            if let Some(item) = self.buckets[self.top].pop() {
                return Some(item);
            }
            self.top -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::griffin_lim::{GriffinLimConfig, PhaseInit, griffin_lim};
    use crate::metrics::spectral_convergence;
    use crate::stft::Stft;

    /// Two steady tones, a glide and a few clicks: tonal and transient structure.
    fn signal(len: usize) -> Vec<f32> {
        let sr = 22050.0f64;
        (0..len)
            .map(|i| {
                let t = i as f64 / sr;
                let mut x = 0.4 * (TAU * 440.0 * t).sin() + 0.2 * (TAU * 1234.5 * t).sin();
                x += 0.2 * (TAU * (300.0 * t + 400.0 * t * t)).sin();
                if i % 5000 < 3 {
                    x += 0.8;
                }
                x as f32
            })
            .collect()
    }

    fn sc_of(stft: &Stft<f32>, spec: &Spectrum<f32>, target: &Spectrum<f32>, len: usize) -> f64 {
        let y = stft.inverse(spec, Some(len));
        spectral_convergence(&target.magnitude(), &stft.forward(&y).magnitude())
    }

    /// PGHI's phases make a nearly consistent spectrum: far closer to the true magnitude after
    /// one inverse STFT than zero phases, and the phase convention matters (the same phases
    /// referred to the window centre instead of the frame start do much worse).
    #[test]
    fn pghi_phases_are_nearly_consistent() {
        let len = 22050;
        let cfg = StftConfig::new(1024, 256);
        let stft = Stft::<f32>::new(cfg).unwrap();
        let truth = stft.forward(&signal(len));
        let mag: Vec<f32> = truth.data.iter().map(|c| c.norm()).collect();
        let est = pghi(&mag, truth.n_frames, &cfg, DEFAULT_TOL).unwrap();
        for (e, &m) in est.data.iter().zip(&mag) {
            assert!((e.norm() - m).abs() <= 1e-4 * m.max(1.0));
        }
        let sc_pghi = sc_of(&stft, &est, &truth, len);
        let zero = Spectrum {
            n_bins: truth.n_bins,
            n_frames: truth.n_frames,
            data: mag.iter().map(|&m| Complex::new(m, 0.0)).collect(),
        };
        let sc_zero = sc_of(&stft, &zero, &truth, len);
        let mut centred = est.clone();
        for (i, c) in centred.data.iter_mut().enumerate() {
            if (i % truth.n_bins) % 2 == 1 {
                *c = -*c;
            }
        }
        let sc_centred = sc_of(&stft, &centred, &truth, len);
        // Measured: 0.062 against 0.82 (zero) and 0.87 (centre-referred).
        assert!(sc_pghi < 0.1, "pghi {sc_pghi}");
        assert!(sc_pghi < 0.15 * sc_zero, "pghi {sc_pghi} zero {sc_zero}");
        assert!(
            sc_pghi < 0.15 * sc_centred,
            "pghi {sc_pghi} centred {sc_centred}"
        );
    }

    /// As a Griffin-Lim start (`PhaseInit::Pghi`), PGHI beats random phases at equal
    /// iterations.
    #[test]
    fn pghi_is_a_better_griffin_lim_start_than_random_phases() {
        let len = 22050;
        let cfg = StftConfig::new(1024, 256);
        let stft = Stft::<f32>::new(cfg).unwrap();
        let target = stft.forward(&signal(len)).magnitude();
        let sc = |init: PhaseInit| {
            let gl = GriffinLimConfig {
                n_iter: 4,
                init,
                ..Default::default()
            };
            let y = griffin_lim(&stft, &target, len, &gl, &mut |_| {}).unwrap();
            spectral_convergence(&target, &stft.forward(&y).magnitude())
        };
        let (sc_pghi, sc_random) = (sc(PhaseInit::Pghi), sc(PhaseInit::Random { seed: 0 }));
        // Measured: 0.032 against 0.25.
        assert!(
            sc_pghi < 0.25 * sc_random,
            "pghi {sc_pghi} random {sc_random}"
        );
    }

    #[test]
    fn bad_inputs_are_refused_and_silence_is_fine() {
        let cfg = StftConfig::new(64, 16);
        assert!(pghi(&[1.0f32; 10], 1, &cfg, DEFAULT_TOL).is_err());
        assert!(pghi(&[1.0f32; 33], 1, &cfg, 0.0).is_err());
        let s = pghi(&[0.0f32; 66], 2, &cfg, DEFAULT_TOL).unwrap();
        assert!(s.data.iter().all(|c| c.norm() == 0.0));
        let s = pghi(&[f32::NAN; 33], 1, &cfg, DEFAULT_TOL).unwrap();
        assert!(s.data.iter().all(|c| c.norm() == 0.0));
    }
}
