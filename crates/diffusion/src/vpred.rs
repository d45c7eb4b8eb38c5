//! The v-prediction parameterisation (Salimans & Ho 2022, section 4): the network predicts
//! `v = alpha eps - sigma x0` from `x_t = alpha x0 + sigma eps`; then `x0 = alpha x_t - sigma v`
//! and `eps = sigma x_t + alpha v`. With `alpha^2 + sigma^2 = 1` these are exact inverses.
//! Elementwise over slices so that tensors of any shape can use them.

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

#[cfg(test)]
mod tests {
    use super::*;

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
