//! The training objective and its inverse at sampling time, in one place: what the network
//! predicts ([`Prediction`]), the noise schedule it is trained and sampled on (with its SNR
//! shift), and how the loss weighs the noise levels ([`Weighting`]). [`Objective`] is built
//! once from the configuration (`DitConfig::objective` for sampling, `TrainConfig::objective`
//! for training) and used by the training batches, the denoiser, evaluation and the tests, so
//! that no two places can disagree about how a network output is read.
//!
//! The parameterisation follows Salimans & Ho ("Progressive Distillation for Fast Sampling of
//! Diffusion Models", ICLR 2022, section 4): `x_t = alpha x0 + sigma eps`, the network predicts
//! `v = alpha eps - sigma x0` (then `x0 = alpha x_t - sigma v`, `eps = sigma x_t + alpha v`;
//! exact inverses with `alpha^2 + sigma^2 = 1`) or the clean `x0` itself. The weights are
//! min-SNR-gamma (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
//! ICCV 2023) and its plus-one variant, each stated for either prediction so that both train
//! the same objective. The elementwise functions work on slices, so tensors of any shape can
//! use them; tensor code uses the coefficient forms ([`Objective::x0_coefficients`]).

use serde::{Deserialize, Serialize};

use crate::schedule::CosineSchedule;

/// What the network's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// `v = alpha eps - sigma x0` (Salimans & Ho 2022); models made before this setting existed.
    #[default]
    V,
    /// The clean tokens `x0`. Clean log-mel tokens lie near a low-dimensional set while `v`
    /// carries the noise of all `P M` values, which a `d_model`-wide state cannot hold when
    /// `d_model < P M`: a v-model then leaves noise in the values it cannot see or reach.
    /// Predicting `x0` avoids that (Li & He 2025, "Back to Basics: Let Denoising Generative
    /// Models Denoise", make the same case for pixel-space transformers).
    X0,
}

/// How the loss weighs the noise levels, stated as the weight of the `x0` error (the v error
/// is the x0 error times `snr + 1`, so either prediction trains the same objective).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// Min-SNR-gamma (Hang et al. 2023): `min(snr, gamma)`. Near pure noise the weight falls
    /// to `snr`, the epsilon-prediction objective, so the levels where only the prompt can tell
    /// what to make barely count.
    #[default]
    MinSnr,
    /// The plain v objective (Salimans & Ho 2022; Stable Audio trains with it), `snr + 1`,
    /// clamped at low noise as min-SNR does: `min(snr, gamma) + 1`. Near pure noise the
    /// weight stays at 1, which is where a model learns to use its conditioning.
    MinSnrPlusOne,
}

/// Prediction, schedule and loss weighting of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub schedule: CosineSchedule,
    pub prediction: Prediction,
    pub weighting: Weighting,
    /// The clamp of [`Weighting`]; 0 turns weighting off (plain MSE of the network's output).
    pub gamma: f64,
}

impl Objective {
    /// The objective as sampling needs it: schedule and prediction, unweighted (the loss
    /// weighting plays no part in reading the network's output).
    pub fn new(schedule: CosineSchedule, prediction: Prediction) -> Self {
        Self {
            schedule,
            prediction,
            weighting: Weighting::default(),
            gamma: 0.0,
        }
    }

    /// The same objective with a loss weighting (`gamma` 0: none).
    pub fn weighted(self, weighting: Weighting, gamma: f64) -> Self {
        Self {
            weighting,
            gamma,
            ..self
        }
    }

    /// `(alpha, sigma)` at time `t`.
    pub fn alpha_sigma(&self, t: f64) -> (f64, f64) {
        self.schedule.alpha_sigma(t)
    }

    /// Weight of the squared error of the network's own output (`v` or `x0`) at time `t`.
    pub fn weight(&self, t: f64) -> f64 {
        if self.gamma <= 0.0 {
            return 1.0;
        }
        let snr = self.schedule.snr(t);
        match (self.weighting, self.prediction) {
            (Weighting::MinSnr, Prediction::V) => min_snr_weight(snr, self.gamma),
            (Weighting::MinSnr, Prediction::X0) => min_snr_weight_x0(snr, self.gamma),
            (Weighting::MinSnrPlusOne, Prediction::V) => min_snr_plus_one_weight(snr, self.gamma),
            (Weighting::MinSnrPlusOne, Prediction::X0) => {
                min_snr_plus_one_weight_x0(snr, self.gamma)
            }
        }
    }

    /// `x_t = alpha x0 + sigma eps` at time `t`.
    pub fn noisy(&self, x0: &[f32], eps: &[f32], t: f64) -> Vec<f32> {
        let (a, s) = self.alpha_sigma(t);
        noisy(x0, eps, a as f32, s as f32)
    }

    /// What the network is trained to output for `x0` noised with `eps` at time `t`.
    pub fn target(&self, x0: &[f32], eps: &[f32], t: f64) -> Vec<f32> {
        match self.prediction {
            Prediction::X0 => x0.to_vec(),
            Prediction::V => {
                let (a, s) = self.alpha_sigma(t);
                v_target(x0, eps, a as f32, s as f32)
            }
        }
    }

    /// `(c_x, c_out)` with `x0 = c_x x_t + c_out output` at time `t`: `(alpha, -sigma)` for a
    /// v-model, `(0, 1)` for an x0-model. Affine, so guidance may combine outputs before it.
    pub fn x0_coefficients(&self, t: f64) -> (f32, f32) {
        match self.prediction {
            Prediction::X0 => (0.0, 1.0),
            Prediction::V => {
                let (a, s) = self.alpha_sigma(t);
                (a as f32, -(s as f32))
            }
        }
    }

    /// The clean estimate the network's `output` at `x_t`, time `t`, stands for.
    pub fn x0_from_output(&self, x_t: &[f32], output: &[f32], t: f64) -> Vec<f32> {
        let (cx, co) = self.x0_coefficients(t);
        x_t.iter()
            .zip(output)
            .map(|(x, o)| cx * x + co * o)
            .collect()
    }
}

/// `x_t = alpha x0 + sigma eps`.
pub fn noisy(x0: &[f32], eps: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
    x0.iter()
        .zip(eps)
        .map(|(x, e)| alpha * x + sigma * e)
        .collect()
}

/// The v target `v = alpha eps - sigma x0`.
pub fn v_target(x0: &[f32], eps: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
    x0.iter()
        .zip(eps)
        .map(|(x, e)| alpha * e - sigma * x)
        .collect()
}

/// `x0 = alpha x_t - sigma v`.
pub fn x0_from_v(x_t: &[f32], v: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
    x_t.iter()
        .zip(v)
        .map(|(x, v)| alpha * x - sigma * v)
        .collect()
}

/// `eps = sigma x_t + alpha v`.
pub fn eps_from_v(x_t: &[f32], v: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
    x_t.iter()
        .zip(v)
        .map(|(x, v)| sigma * x + alpha * v)
        .collect()
}

/// Min-SNR-gamma weight of the v-prediction MSE (Hang et al. 2023, for v targets):
/// `min(snr, gamma) / (snr + 1)`. gamma = 5 in the paper.
pub fn min_snr_weight(snr: f64, gamma: f64) -> f64 {
    if snr.is_infinite() {
        return 0.0;
    }
    snr.min(gamma) / (snr + 1.0)
}

/// The weight of the `x0` MSE that makes it the same objective as the min-SNR-gamma v MSE:
/// `|v - v^|^2 = |x0 - x0^|^2 / sigma^2` and `snr + 1 = 1 / sigma^2`, so
/// `min(snr, gamma) / (snr + 1) |v - v^|^2 = min(snr, gamma) |x0 - x0^|^2`.
pub fn min_snr_weight_x0(snr: f64, gamma: f64) -> f64 {
    snr.min(gamma)
}

/// The x0-error weight `min(snr, gamma) + 1`: the v objective's own weight `snr + 1` clamped
/// at low noise as min-SNR-gamma clamps. Unlike [`min_snr_weight_x0`] it stays near 1 close to
/// pure noise, where the conditioning is all a model has to go on.
pub fn min_snr_plus_one_weight_x0(snr: f64, gamma: f64) -> f64 {
    snr.min(gamma) + 1.0
}

/// [`min_snr_plus_one_weight_x0`] as a weight of the v error: divided by `snr + 1`.
pub fn min_snr_plus_one_weight(snr: f64, gamma: f64) -> f64 {
    if snr.is_infinite() {
        return 0.0;
    }
    (snr.min(gamma) + 1.0) / (snr + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_x0_and_v_losses_agree() {
        let x0 = [0.5f32, -1.0, 2.0, 0.0];
        let eps = [0.1f32, 0.7, -0.3, 1.2];
        let guess = [0.4f32, -0.2, 1.5, 0.3]; // a predicted x0
        for t in [0.05f64, 0.3, 0.7, 0.95] {
            let ab = (t * std::f64::consts::FRAC_PI_2).cos().powi(2);
            let (a, s) = (ab.sqrt(), (1.0 - ab).sqrt());
            let snr = ab / (1.0 - ab);
            let xt = noisy(&x0, &eps, a as f32, s as f32);
            let v = v_target(&x0, &eps, a as f32, s as f32);
            // The v that the guess corresponds to: v = (alpha x_t - x0) / sigma.
            let v_hat: Vec<f64> = xt
                .iter()
                .zip(&guess)
                .map(|(&x, &g)| (a * x as f64 - g as f64) / s)
                .collect();
            let lv: f64 = v
                .iter()
                .zip(&v_hat)
                .map(|(&p, q)| (p as f64 - q).powi(2))
                .sum();
            let lx: f64 = x0
                .iter()
                .zip(&guess)
                .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
                .sum();
            type W = fn(f64, f64) -> f64;
            let pairs: [(W, W); 2] = [
                (min_snr_weight, min_snr_weight_x0),
                (min_snr_plus_one_weight, min_snr_plus_one_weight_x0),
            ];
            for (k, (v_weight, x0_weight)) in pairs.into_iter().enumerate() {
                let (wv, wx) = (lv * v_weight(snr, 5.0), lx * x0_weight(snr, 5.0));
                assert!(
                    (wv - wx).abs() < 1e-4 * wv.max(1.0),
                    "weighting {k}, t {t}: {wv} vs {wx}"
                );
            }
        }
    }

    #[test]
    fn plus_one_keeps_weight_near_pure_noise() {
        // Near pure noise min-SNR weighs the x0 error by snr (almost nothing); plus-one by ~1.
        let snr = 1e-3;
        assert!(min_snr_weight_x0(snr, 5.0) < 2e-3);
        assert!((min_snr_plus_one_weight_x0(snr, 5.0) - 1.0).abs() < 2e-3);
        // At low noise both clamp: the difference is the constant 1.
        assert_eq!(min_snr_plus_one_weight_x0(50.0, 5.0), 6.0);
        assert_eq!(min_snr_plus_one_weight(f64::INFINITY, 5.0), 0.0);
    }

    #[test]
    fn conversions_invert_each_other() {
        let x0 = [0.5f32, -1.0, 2.0, 0.0];
        let eps = [0.1f32, 0.7, -0.3, 1.2];
        for t in [0.05f64, 0.3, 0.7, 0.99] {
            let ab = (t * std::f64::consts::FRAC_PI_2).cos().powi(2);
            let (a, s) = (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32);
            let xt = noisy(&x0, &eps, a, s);
            let v = v_target(&x0, &eps, a, s);
            for (got, want) in x0_from_v(&xt, &v, a, s).iter().zip(&x0) {
                assert!((got - want).abs() < 1e-5);
            }
            for (got, want) in eps_from_v(&xt, &v, a, s).iter().zip(&eps) {
                assert!((got - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn min_snr_weights() {
        assert_eq!(min_snr_weight(1.0, 5.0), 0.5);
        assert!((min_snr_weight(100.0, 5.0) - 5.0 / 101.0).abs() < 1e-12);
        assert_eq!(min_snr_weight(f64::INFINITY, 5.0), 0.0);
    }

    #[test]
    fn objectives_for_v_and_x0_weigh_the_same_error_equally_on_a_shifted_schedule() {
        // The Objective's target, weight and x0 reading agree between predictions: the weighted
        // loss of the same clean guess is equal, and reading the exact target gives x0 back.
        let x0 = [0.5f32, -1.0, 2.0, 0.0];
        let eps = [0.1f32, 0.7, -0.3, 1.2];
        let guess = [0.4f32, -0.2, 1.5, 0.3];
        for weighting in [Weighting::MinSnr, Weighting::MinSnrPlusOne] {
            let make = |p| Objective::new(CosineSchedule::shifted(4.0), p).weighted(weighting, 5.0);
            let (ov, ox) = (make(Prediction::V), make(Prediction::X0));
            for t in [0.05f64, 0.3, 0.7, 0.95] {
                let xt = ov.noisy(&x0, &eps, t);
                assert_eq!(xt, ox.noisy(&x0, &eps, t));
                for o in [ov, ox] {
                    let back = o.x0_from_output(&xt, &o.target(&x0, &eps, t), t);
                    for (b, x) in back.iter().zip(&x0) {
                        assert!((b - x).abs() < 1e-4, "{:?} t {t}: {b} vs {x}", o.prediction);
                    }
                }
                // The v output whose x0 reading is the guess: v = (alpha x_t - guess) / sigma.
                let (a, s) = ov.alpha_sigma(t);
                let v_guess: Vec<f32> = xt
                    .iter()
                    .zip(&guess)
                    .map(|(&x, &g)| ((a * x as f64 - g as f64) / s) as f32)
                    .collect();
                let se = |p: &[f32], q: &[f32]| -> f64 {
                    p.iter()
                        .zip(q)
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum()
                };
                let lv = ov.weight(t) * se(&v_guess, &ov.target(&x0, &eps, t));
                let lx = ox.weight(t) * se(&guess, &ox.target(&x0, &eps, t));
                assert!(
                    (lv - lx).abs() < 1e-3 * lv.max(1.0),
                    "{weighting:?} t {t}: {lv} vs {lx}"
                );
            }
        }
        // Unweighted: every level counts the same.
        let plain = Objective::new(CosineSchedule::shifted(4.0), Prediction::X0);
        assert_eq!(plain.weight(0.1), 1.0);
        assert_eq!(plain.weight(0.9), 1.0);
    }
}
