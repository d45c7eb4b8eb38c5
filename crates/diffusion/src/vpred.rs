//! The v-prediction parameterisation (Salimans & Ho 2022, section 4): the network predicts
//! `v = alpha eps - sigma x0` from `x_t = alpha x0 + sigma eps`; then `x0 = alpha x_t - sigma v`
//! and `eps = sigma x_t + alpha v`. With `alpha^2 + sigma^2 = 1` these are exact inverses.
//! Elementwise over slices so that tensors of any shape can use them. A model may instead predict
//! `x0` itself; [`min_snr_weight_x0`] then gives it the same training objective.

/// `x_t = alpha x0 + sigma eps`.
pub fn noisy(x0: &[f32], eps: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
    x0.iter()
        .zip(eps)
        .map(|(x, e)| alpha * x + sigma * e)
        .collect()
}

/// The training target `v = alpha eps - sigma x0`.
pub fn target(x0: &[f32], eps: &[f32], alpha: f32, sigma: f32) -> Vec<f32> {
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
            let v = target(&x0, &eps, a as f32, s as f32);
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
            let v = target(&x0, &eps, a, s);
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
}
