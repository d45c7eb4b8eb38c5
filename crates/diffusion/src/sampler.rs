//! Samplers as free functions over a denoiser (as k-diffusion's `sampling.py` does): the
//! denoiser maps `(x_t, t)` to an estimate of `x_0`; guidance, in-painting constraints and the
//! network's parameterisation all live inside it, so every sampler serves every task.
//!
//! - DDIM, eta = 0 (Song, Meng & Ermon, ICLR 2021): first order, uniform time grid.
//! - DPM-Solver++(2M) (Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
//!   Probabilistic Models", 2022, Algorithm 2): second-order multistep in log-SNR, data
//!   prediction, one evaluation per step; the default.
//! - Euler and Heun (Karras et al., "Elucidating the Design Space of Diffusion-Based Generative
//!   Models", NeurIPS 2022, Algorithm 1): the probability-flow ODE in the variance-exploding
//!   view `x / alpha` over Karras' rho = 7 noise levels; Heun adds a trapezoidal correction (two
//!   evaluations per step, the last step Euler).
//!
//! Symbols: `t` diffusion time in [0, 1] (1 = pure noise), `alpha_t`, `sigma_t` from
//! [`CosineSchedule::alpha_sigma`], `x_t = alpha_t x_0 + sigma_t eps`, `lambda_t = ln(alpha_t /
//! sigma_t)` (half the log-SNR). All samplers are deterministic: the randomness is `noise`.

use std::fmt;
use std::str::FromStr;

use crate::schedule::CosineSchedule;

/// Anything that estimates the clean signal from a noisy one.
pub trait Denoiser {
    /// `x0_hat(x_t, t)`, same length as `x`.
    fn x0(&mut self, x: &[f32], t: f64) -> Vec<f32>;
}

impl<F: FnMut(&[f32], f64) -> Vec<f32>> Denoiser for F {
    fn x0(&mut self, x: &[f32], t: f64) -> Vec<f32> {
        self(x, t)
    }
}

/// `steps + 1` times from 1 down to 0, evenly spaced.
pub fn time_grid(steps: usize) -> Vec<f64> {
    let steps = steps.max(1);
    (0..=steps).map(|i| 1.0 - i as f64 / steps as f64).collect()
}

/// `eps_hat = (x_t - alpha_t x0_hat) / sigma_t`.
fn eps_from_x0(x: &[f32], x0: &[f32], alpha: f64, sigma: f64) -> Vec<f32> {
    let inv = 1.0 / sigma.max(1e-12);
    x.iter()
        .zip(x0)
        .map(|(&x, &x0)| ((x as f64 - alpha * x0 as f64) * inv) as f32)
        .collect()
}

/// DDIM with eta = 0 (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
/// eq. 12): the deterministic sampler. `noise` is `x_1`.
pub fn ddim(
    denoiser: &mut dyn Denoiser,
    schedule: &CosineSchedule,
    noise: Vec<f32>,
    steps: usize,
) -> Vec<f32> {
    let grid = time_grid(steps);
    let mut x = noise;
    for w in grid.windows(2) {
        let (t, s) = (w[0], w[1]);
        // 1. Predict x0 at the current time.
        let x0 = denoiser.x0(&x, t);
        // 2. The noise that x_t implies under that prediction.
        let (a_t, s_t) = schedule.alpha_sigma(t);
        let eps = eps_from_x0(&x, &x0, a_t, s_t);
        // 3. Move to time s along the same noise: x_s = alpha_s x0 + sigma_s eps.
        let (a_s, s_s) = schedule.alpha_sigma(s);
        x = x0
            .iter()
            .zip(&eps)
            .map(|(&x0, &e)| (a_s * x0 as f64 + s_s * e as f64) as f32)
            .collect();
    }
    x
}

/// Which sampler to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerKind {
    Ddim,
    DpmSolver2M,
    Euler,
    Heun,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 4] = [
        SamplerKind::DpmSolver2M,
        SamplerKind::Ddim,
        SamplerKind::Euler,
        SamplerKind::Heun,
    ];

    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "ddim",
            SamplerKind::DpmSolver2M => "dpm++2m",
            SamplerKind::Euler => "euler",
            SamplerKind::Heun => "heun",
        }
    }

    /// Denoiser evaluations for `steps` steps.
    pub fn evaluations(self, steps: usize) -> usize {
        let steps = steps.max(1);
        match self {
            SamplerKind::Heun => 2 * steps - 1,
            _ => steps,
        }
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown sampler name; lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sampler {0:?}; choose one of dpm++2m, ddim, euler, heun")]
pub struct UnknownSampler(pub String);

impl FromStr for SamplerKind {
    type Err = UnknownSampler;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ddim" => Ok(SamplerKind::Ddim),
            "dpm++2m" | "dpmpp2m" | "dpmpp-2m" | "dpm-solver++" | "dpmsolver++" => {
                Ok(SamplerKind::DpmSolver2M)
            }
            "euler" => Ok(SamplerKind::Euler),
            "heun" => Ok(SamplerKind::Heun),
            _ => Err(UnknownSampler(s.to_string())),
        }
    }
}

/// Runs `kind` for `steps` steps from `noise` (`x_1`). `on_eval(i, n)` reports denoiser
/// evaluation `i` of `n` (1-based) as it finishes.
pub fn sample(
    kind: SamplerKind,
    denoiser: &mut dyn Denoiser,
    schedule: &CosineSchedule,
    noise: Vec<f32>,
    steps: usize,
    on_eval: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    let total = kind.evaluations(steps);
    let mut done = 0;
    let mut counting = CountingDenoiser {
        inner: denoiser,
        on_eval: &mut |_| {
            done += 1;
            on_eval(done, total)
        },
    };
    match kind {
        SamplerKind::Ddim => ddim(&mut counting, schedule, noise, steps),
        SamplerKind::DpmSolver2M => dpm_solver_2m(&mut counting, schedule, noise, steps),
        SamplerKind::Euler => karras(&mut counting, schedule, noise, steps, false),
        SamplerKind::Heun => karras(&mut counting, schedule, noise, steps, true),
    }
}

/// Forwards to a denoiser and reports every evaluation.
struct CountingDenoiser<'a, 'b> {
    inner: &'a mut dyn Denoiser,
    on_eval: &'b mut dyn FnMut(()),
}

impl Denoiser for CountingDenoiser<'_, '_> {
    fn x0(&mut self, x: &[f32], t: f64) -> Vec<f32> {
        let out = self.inner.x0(x, t);
        (self.on_eval)(());
        out
    }
}

/// `lambda = ln(alpha / sigma)`, finite at both ends of the grid (+-inf mapped to +-1e3).
fn lambda(schedule: &CosineSchedule, t: f64) -> f64 {
    let (a, s) = schedule.alpha_sigma(t);
    (a.max(1e-300).ln() - s.max(1e-300).ln()).clamp(-1e3, 1e3)
}

/// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) on the uniform time grid, with a first-order
/// first and last step ("lower order final", which keeps few-step sampling stable).
pub fn dpm_solver_2m(
    denoiser: &mut dyn Denoiser,
    schedule: &CosineSchedule,
    noise: Vec<f32>,
    steps: usize,
) -> Vec<f32> {
    let grid = time_grid(steps);
    let n = grid.len() - 1;
    let mut x = noise;
    let mut previous: Option<(Vec<f32>, f64)> = None; // (x0 at the previous step, its h)
    for i in 0..n {
        let (t, s) = (grid[i], grid[i + 1]);
        // 1. Data prediction at t.
        let x0 = denoiser.x0(&x, t);
        // 2. Step size in lambda.
        let (lt, ls) = (lambda(schedule, t), lambda(schedule, s));
        let h = ls - lt;
        // 3. The multistep estimate D: first order on the first and the last step, else
        //    D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1} with r = h_{i-1} / h_i.
        let d: Vec<f32> = match &previous {
            Some((x0_prev, h_prev)) if i + 1 < n => {
                let r = h_prev / h;
                let c = 1.0 / (2.0 * r);
                x0.iter()
                    .zip(x0_prev)
                    .map(|(&a, &b)| ((1.0 + c) * a as f64 - c * b as f64) as f32)
                    .collect()
            }
            _ => x0.clone(),
        };
        // 4. x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D.
        let (_, s_t) = schedule.alpha_sigma(t);
        let (a_s, s_s) = schedule.alpha_sigma(s);
        let ratio = s_s / s_t.max(1e-300);
        let gain = -a_s * (-h).exp_m1();
        x = x
            .iter()
            .zip(&d)
            .map(|(&x, &d)| (ratio * x as f64 + gain * d as f64) as f32)
            .collect();
        previous = Some((x0, h));
    }
    x
}

/// Noise levels (in `sigma / alpha`) of Karras et al. (2022, eq. 5), rho = 7, followed by 0.
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, steps: usize) -> Vec<f64> {
    let steps = steps.max(1);
    let rho = 7.0;
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    let mut out: Vec<f64> = (0..steps)
        .map(|i| {
            let f = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            (hi + f * (lo - hi)).powf(rho)
        })
        .collect();
    out.push(0.0);
    out
}

/// Largest and smallest noise levels of the Karras grid, Karras et al.'s 80 and 0.002 (80 is
/// `t` = 0.992 of the cosine schedule; its `alpha` of 1/80 leaves a negligible trace of signal).
/// A shifted schedule multiplies every level by its shift, and so does the grid: it then spans
/// the same times.
const KARRAS_SIGMA_MAX: f64 = 80.0;
const KARRAS_SIGMA_MIN: f64 = 0.002;

/// Euler (`heun = false`) or Heun (Karras et al. 2022, Algorithm 1, deterministic) on
/// `y = x / alpha`, where the ODE is `dy / d sigma = (y - D(y, sigma)) / sigma`.
fn karras(
    denoiser: &mut dyn Denoiser,
    schedule: &CosineSchedule,
    noise: Vec<f32>,
    steps: usize,
    heun: bool,
) -> Vec<f32> {
    let sigma_max = KARRAS_SIGMA_MAX * schedule.shift;
    let sigmas = karras_sigmas(KARRAS_SIGMA_MIN * schedule.shift, sigma_max, steps);
    // x_T ~ N(0, 1) is y = x / alpha ~ N(0, 1 / alpha^2) ~ N(0, sigma^2 + 1) ~ sigma_max * noise.
    let scale = (sigma_max * sigma_max + 1.0).sqrt();
    let mut y: Vec<f64> = noise.iter().map(|&v| v as f64 * scale).collect();
    // D(y, sigma) through the VP denoiser: x = alpha y at the time of sigma.
    let mut denoise = |y: &[f64], sigma: f64| -> Vec<f64> {
        let t = schedule.t_from_ve_sigma(sigma);
        let alpha = 1.0 / (1.0 + sigma * sigma).sqrt();
        let x: Vec<f32> = y.iter().map(|&v| (alpha * v) as f32).collect();
        denoiser.x0(&x, t).into_iter().map(f64::from).collect()
    };
    for w in sigmas.windows(2) {
        let (sigma, next) = (w[0], w[1]);
        // 1. Slope at sigma: d = (y - D(y)) / sigma.
        let x0 = denoise(&y, sigma);
        let d: Vec<f64> = y.iter().zip(&x0).map(|(y, x)| (y - x) / sigma).collect();
        // 2. Euler step to the next level.
        let euler: Vec<f64> = y
            .iter()
            .zip(&d)
            .map(|(y, d)| y + (next - sigma) * d)
            .collect();
        // 3. Heun: average with the slope at the next level (not at sigma = 0).
        y = if heun && next > 0.0 {
            let x1 = denoise(&euler, next);
            y.iter()
                .zip(&d)
                .zip(euler.iter().zip(&x1))
                .map(|((y, d), (e, x1))| {
                    let d1 = (e - x1) / next;
                    y + (next - sigma) * 0.5 * (d + d1)
                })
                .collect()
        } else {
            euler
        };
    }
    // sigma = 0: y is x_0.
    y.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The exact denoiser of data distributed as N(mean, std^2) in every coordinate:
    /// `E[x0 | x_t] = mean + alpha std^2 (x_t - alpha mean) / (alpha^2 std^2 + sigma^2)`.
    pub fn gaussian_oracle(
        schedule: CosineSchedule,
        mean: f64,
        std: f64,
    ) -> impl FnMut(&[f32], f64) -> Vec<f32> {
        move |x: &[f32], t: f64| {
            let (a, s) = schedule.alpha_sigma(t);
            let gain = a * std * std / (a * a * std * std + s * s);
            x.iter()
                .map(|&x| (mean + gain * (x as f64 - a * mean)) as f32)
                .collect()
        }
    }

    pub fn standard_normal(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut u = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| ((-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()) as f32)
            .collect()
    }

    #[test]
    fn the_grid_runs_from_noise_to_data() {
        assert_eq!(time_grid(4), vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn ddim_with_the_exact_denoiser_reaches_the_data_distribution() {
        let noise = standard_normal(20000, 3);
        let mut calls = 0;
        let mut oracle = gaussian_oracle(CosineSchedule::default(), 1.5, 0.5);
        let mut counted = |x: &[f32], t: f64| {
            calls += 1;
            oracle(x, t)
        };
        let out = ddim(&mut counted, &CosineSchedule::default(), noise, 50);
        assert_eq!(calls, 50);
        let n = out.len() as f64;
        let mean = out.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 1.5).abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
    }

    #[test]
    fn a_point_mass_is_reached_exactly() {
        let out = ddim(
            &mut |x: &[f32], _t: f64| vec![0.25; x.len()],
            &CosineSchedule::default(),
            standard_normal(16, 1),
            3,
        );
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    /// Where the exact probability-flow ODE takes `noise` for N(mean, std^2) data: the flow
    /// of a Gaussian is affine, `x_0 = mean + std x_1` (alpha_1 is ~0).
    fn exact(noise: &[f32], mean: f64, std: f64) -> Vec<f64> {
        noise.iter().map(|&z| mean + std * z as f64).collect()
    }

    /// Samples of `kind` for N(1.5, 0.5^2) data, and their largest distance from the exact flow.
    fn run(kind: SamplerKind, steps: usize) -> (Vec<f32>, f64) {
        run_on(CosineSchedule::default(), kind, steps)
    }

    /// [`run`] on another schedule (the denoiser is exact for that schedule).
    fn run_on(schedule: CosineSchedule, kind: SamplerKind, steps: usize) -> (Vec<f32>, f64) {
        let noise = standard_normal(4000, 7);
        let truth = exact(&noise, 1.5, 0.5);
        let mut evals = 0;
        let out = sample(
            kind,
            &mut gaussian_oracle(schedule, 1.5, 0.5),
            &schedule,
            noise,
            steps,
            &mut |i, n| {
                evals += 1;
                assert_eq!(i, evals);
                assert_eq!(n, kind.evaluations(steps));
            },
        );
        assert_eq!(evals, kind.evaluations(steps), "{kind}");
        let err = out
            .iter()
            .zip(&truth)
            .map(|(&o, &t)| (o as f64 - t).abs())
            .fold(0.0, f64::max);
        (out, err)
    }

    fn max_error(kind: SamplerKind, steps: usize) -> f64 {
        run(kind, steps).1
    }

    #[test]
    fn every_sampler_reaches_the_data_distribution() {
        for kind in SamplerKind::ALL {
            let (out, _) = run(kind, 100);
            let n = out.len() as f64;
            let mean = out.iter().map(|&v| v as f64).sum::<f64>() / n;
            let std = (out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!((mean - 1.5).abs() < 0.02, "{kind}: mean {mean}");
            assert!((std - 0.5).abs() < 0.02, "{kind}: std {std}");
        }
    }

    #[test]
    fn every_sampler_converges_to_the_exact_flow() {
        // The Karras samplers start at sigma 80, not at pure noise: a floor of ~0.01 here.
        for kind in SamplerKind::ALL {
            let (coarse, fine) = (max_error(kind, 20), max_error(kind, 200));
            assert!(fine < 0.04, "{kind}: max error {fine} at 200 steps");
            assert!(
                fine < coarse / 2.0,
                "{kind}: {coarse} at 20 steps, {fine} at 200"
            );
        }
    }

    #[test]
    fn every_sampler_converges_to_the_exact_flow_on_a_shifted_schedule() {
        // The shipped models' schedule (shift 4): every sampler converges to the exact flow on
        // it. Measured max errors at 20 / 200 steps: dpm++2m 0.36 / 0.007, ddim 0.46 / 0.055,
        // euler 0.31 / 0.031, heun 0.13 / 0.003 (plain schedule: dpm++2m 0.006 / 0.00003). The
        // grid uniform in t is far coarser in log-SNR on the shifted schedule, so 20 steps land
        // much further from the exact flow than on the plain one; a log-SNR grid is the fix
        // to try (it changes every generation, so it waits for the evaluation suite).
        let shifted = CosineSchedule::shifted(4.0);
        for kind in SamplerKind::ALL {
            let (coarse, fine) = (run_on(shifted, kind, 20).1, run_on(shifted, kind, 200).1);
            assert!(fine < 0.06, "{kind}: max error {fine} at 200 steps");
            assert!(
                fine < coarse / 2.0,
                "{kind}: {coarse} at 20 steps, {fine} at 200"
            );
        }
    }

    #[test]
    fn second_order_samplers_beat_first_order_ones() {
        let ddim = max_error(SamplerKind::Ddim, 20);
        let dpm = max_error(SamplerKind::DpmSolver2M, 20);
        assert!(dpm < ddim / 4.0, "dpm++2m {dpm} vs ddim {ddim}");
        let euler = max_error(SamplerKind::Euler, 20);
        let heun = max_error(SamplerKind::Heun, 20);
        assert!(heun < euler / 2.0, "heun {heun} vs euler {euler}");
    }

    #[test]
    fn sampler_names_round_trip() {
        for kind in SamplerKind::ALL {
            assert_eq!(kind.name().parse::<SamplerKind>(), Ok(kind));
        }
        let err = "plms".parse::<SamplerKind>().unwrap_err();
        assert!(err.to_string().contains("dpm++2m"));
    }

    #[test]
    fn karras_levels_fall_to_zero() {
        let s = karras_sigmas(0.002, 80.0, 5);
        assert_eq!(s.len(), 6);
        assert!((s[0] - 80.0).abs() < 1e-9 && (s[4] - 0.002).abs() < 1e-12 && s[5] == 0.0);
        assert!(s.windows(2).all(|w| w[1] < w[0]));
    }
}
