//! Samplers as free functions over a denoiser (as k-diffusion's `sampling.py` does): the
//! denoiser maps `(x_t, t)` to an estimate of `x_0`; guidance, in-painting constraints and the
//! network's parameterisation all live inside it, so every sampler serves every task.
//!
//! Symbols: `t` diffusion time in [0, 1] (1 = pure noise), `alpha_t`, `sigma_t` from
//! [`CosineSchedule::alpha_sigma`], `x_t = alpha_t x_0 + sigma_t eps`.

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
/// eq. 12): the deterministic sampler. `noise` is `x_1`; `on_step(i)` reports step `i` of
/// `steps` (1-based) as it finishes.
pub fn ddim(
    denoiser: &mut dyn Denoiser,
    schedule: &CosineSchedule,
    noise: Vec<f32>,
    steps: usize,
    on_step: &mut dyn FnMut(usize),
) -> Vec<f32> {
    let grid = time_grid(steps);
    let mut x = noise;
    for (i, w) in grid.windows(2).enumerate() {
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
        on_step(i + 1);
    }
    x
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The exact denoiser of data distributed as N(mean, std^2) in every coordinate:
    /// `E[x0 | x_t] = mean + alpha std^2 (x_t - alpha mean) / (alpha^2 std^2 + sigma^2)`.
    pub fn gaussian_oracle(mean: f64, std: f64) -> impl FnMut(&[f32], f64) -> Vec<f32> {
        let schedule = CosineSchedule::default();
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
        let out = ddim(
            &mut gaussian_oracle(1.5, 0.5),
            &CosineSchedule::default(),
            noise,
            50,
            &mut |_| calls += 1,
        );
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
            &mut |_| {},
        );
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }
}
