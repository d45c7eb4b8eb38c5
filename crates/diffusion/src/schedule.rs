//! The cosine schedule. Symbols follow the papers: `t` in [0, 1] is diffusion time,
//! `alpha_bar(t)` the signal variance kept, `alpha = sqrt(alpha_bar)`, `sigma = sqrt(1 -
//! alpha_bar)`, so `x_t = alpha x_0 + sigma eps`; `snr = alpha^2 / sigma^2`.
//!
//! | symbol here | Nichol & Dhariwal | diffusers |
//! |---|---|---|
//! | `alpha_bar(t)` | `alpha_bar_t = f(t)/f(0)` | `alphas_cumprod[i]` |
//! | `offset` | `s = 0.008` | (0.008 in `betas_for_alpha_bar`) |
//! | `betas(n)` | `beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`, clipped at 0.999 | `betas` |
//!
//! A `shift` above 1 divides the SNR at every time by `shift^2`: the shifted cosine schedule of
//! Hoogeboom et al. ("simple diffusion", ICML 2023, section 3.1; `log snr` moved by
//! `-2 log shift`). Many values per example (a window is 128 tokens of 320 values) let a network
//! read the global character of the clean signal from a noisy input until very close to pure
//! noise, so without a shift the levels at which the prompt decides what is made are a thin
//! sliver at the end of the schedule, rarely trained and given one sampler step.

use std::f64::consts::FRAC_PI_2;

/// Cosine schedule with offset `s` (0.008 in the paper) and SNR shift (1 = none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    pub offset: f64,
    pub shift: f64,
}

impl Default for CosineSchedule {
    fn default() -> Self {
        Self {
            offset: 0.008,
            shift: 1.0,
        }
    }
}

/// Largest discrete beta (Nichol & Dhariwal clip at 0.999 to avoid singularities at t = 1).
pub const MAX_BETA: f64 = 0.999;

impl CosineSchedule {
    /// The default cosine schedule with its SNR divided by `shift^2`.
    pub fn shifted(shift: f64) -> Self {
        Self {
            shift,
            ..Self::default()
        }
    }

    /// `f(t) = cos^2(((t + s) / (1 + s)) * pi / 2)`, unnormalised.
    fn f(&self, t: f64) -> f64 {
        (((t + self.offset) / (1.0 + self.offset)) * FRAC_PI_2)
            .cos()
            .powi(2)
    }

    /// `alpha_bar(t) = f(t) / f(0)`, for `t` in [0, 1] (clamped); shifted,
    /// `ab / (ab + shift^2 (1 - ab))`, the `alpha_bar` whose SNR is `snr / shift^2`.
    pub fn alpha_bar(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        let ab = (self.f(t) / self.f(0.0)).clamp(0.0, 1.0);
        if self.shift == 1.0 {
            return ab;
        }
        let k = self.shift * self.shift;
        ab / (ab + k * (1.0 - ab))
    }

    /// `(alpha, sigma)` at time `t`.
    pub fn alpha_sigma(&self, t: f64) -> (f64, f64) {
        let ab = self.alpha_bar(t);
        (ab.sqrt(), (1.0 - ab).sqrt())
    }

    /// `sigma / alpha`, the noise level of the variance-exploding view `x_t / alpha = x_0 +
    /// (sigma / alpha) eps` that Karras et al. (2022) samplers step in.
    pub fn ve_sigma(&self, t: f64) -> f64 {
        let (a, s) = self.alpha_sigma(t);
        s / a.max(f64::MIN_POSITIVE)
    }

    /// The time whose `sigma / alpha` is `ve_sigma` (inverse of [`Self::ve_sigma`]): the
    /// unshifted level is `ve_sigma / shift`, `alpha_bar = 1 / (1 + level^2)`, then the cosine
    /// solved for `t`.
    pub fn t_from_ve_sigma(&self, ve_sigma: f64) -> f64 {
        let level = ve_sigma / self.shift;
        let alpha_bar = 1.0 / (1.0 + level * level);
        let c = (alpha_bar * self.f(0.0)).sqrt().clamp(0.0, 1.0);
        (c.acos() / FRAC_PI_2 * (1.0 + self.offset) - self.offset).clamp(0.0, 1.0)
    }

    /// Signal-to-noise ratio `alpha^2 / sigma^2` (infinite at t = 0).
    pub fn snr(&self, t: f64) -> f64 {
        let ab = self.alpha_bar(t);
        ab / (1.0 - ab)
    }

    /// Discrete betas for `n` steps, as diffusers' `betas_for_alpha_bar(n, "cosine")`:
    /// `beta_i = min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999)`. Note `(i + 1) / n`
    /// is real division (an integer division here once made 999 of 1000 betas zero elsewhere).
    pub fn betas(&self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t1 = i as f64 / n as f64;
                let t2 = (i + 1) as f64 / n as f64;
                (1.0 - self.alpha_bar(t2) / self.alpha_bar(t1)).min(MAX_BETA)
            })
            .collect()
    }

    /// Cumulative products of `1 - beta` for `n` steps (diffusers' `alphas_cumprod`).
    pub fn alphas_cumprod(&self, n: usize) -> Vec<f64> {
        let mut acc = 1.0;
        self.betas(n)
            .into_iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_monotonicity() {
        let s = CosineSchedule::default();
        assert_eq!(s.alpha_bar(0.0), 1.0);
        assert!(s.alpha_bar(1.0) < 1e-12);
        let ts: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
        assert!(ts.windows(2).all(|w| s.alpha_bar(w[1]) < s.alpha_bar(w[0])));
        let (a, sg) = s.alpha_sigma(0.37);
        assert!((a * a + sg * sg - 1.0).abs() < 1e-12);
        assert!(s.snr(0.5) > s.snr(0.6));
    }

    #[test]
    fn ve_sigma_and_time_invert_each_other() {
        for s in [CosineSchedule::default(), CosineSchedule::shifted(4.0)] {
            for t in [0.001, 0.1, 0.37, 0.5, 0.9, 0.999] {
                let back = s.t_from_ve_sigma(s.ve_sigma(t));
                assert!((back - t).abs() < 1e-9, "shift {}: {t} -> {back}", s.shift);
            }
            assert_eq!(s.t_from_ve_sigma(0.0), 0.0);
        }
    }

    #[test]
    fn shift_divides_the_snr() {
        let (base, shifted) = (CosineSchedule::default(), CosineSchedule::shifted(4.0));
        for t in [0.05, 0.3, 0.5, 0.8, 0.95] {
            let ratio = base.snr(t) / shifted.snr(t);
            assert!((ratio - 16.0).abs() < 1e-9 * 16.0, "t {t}: {ratio}");
            let (a, s) = shifted.alpha_sigma(t);
            assert!((a * a + s * s - 1.0).abs() < 1e-12);
        }
        assert_eq!(shifted.alpha_bar(0.0), 1.0);
        assert!(shifted.alpha_bar(1.0) < 1e-12);
        // Much noisier early: snr 1 moves from t = 0.5 to about t = 0.15.
        assert!((base.snr(0.5) - 1.0).abs() < 0.05);
        assert!((shifted.snr(0.15) - 1.0).abs() < 0.05);
    }

    #[test]
    fn no_beta_is_zero_and_the_last_is_clipped() {
        let b = CosineSchedule::default().betas(1000);
        assert!(b.iter().all(|&x| x > 0.0 && x <= MAX_BETA));
        assert_eq!(b[999], MAX_BETA);
    }
}
