//! Distances between spectrograms used to judge reconstructions: spectral convergence
//! (Sturmel & Daudet, "Signal reconstruction from STFT magnitude: a state of the art", 2011)
//! and log-spectral distance in dB (Gray & Markel 1976) with an 80 dB floor.

use crate::matrix::Matrix;

/// `||S - S_hat||_F / ||S||_F` on magnitudes of the same shape; 0 is perfect.
///
/// # Panics
/// If the shapes differ.
pub fn spectral_convergence(reference: &Matrix<f32>, estimate: &Matrix<f32>) -> f64 {
    assert_eq!(
        reference.shape(),
        estimate.shape(),
        "spectrogram shapes differ"
    );
    let (num, den) = reference.as_slice().iter().zip(estimate.as_slice()).fold(
        (0.0f64, 0.0f64),
        |(n, d), (&r, &e)| {
            let (r, e) = (r as f64, e as f64);
            (n + (r - e) * (r - e), d + r * r)
        },
    );
    if den == 0.0 {
        if num == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (num / den).sqrt()
    }
}

/// Log-spectral distance in dB between magnitudes `[n_bins, frames]`: the mean over frames of
/// the RMS over bins of `10 log10(max(|S|^2, f) / max(|S_hat|^2, f))`, where the floor `f`
/// sits [`LSD_FLOOR_DB`] below the reference's peak power. The floor keeps inaudible bins
/// (numerically near zero in one signal and not the other) from dominating the average.
///
/// # Panics
/// If the shapes differ.
pub fn log_spectral_distance(reference: &Matrix<f32>, estimate: &Matrix<f32>) -> f64 {
    assert_eq!(
        reference.shape(),
        estimate.shape(),
        "spectrogram shapes differ"
    );
    let (bins, frames) = reference.shape();
    if bins == 0 || frames == 0 {
        return 0.0;
    }
    let peak = reference
        .as_slice()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .fold(0.0, f64::max);
    let floor = (peak * 10f64.powf(-LSD_FLOOR_DB / 10.0)).max(f64::MIN_POSITIVE);
    let mut total = 0.0;
    for t in 0..frames {
        let mut acc = 0.0;
        for k in 0..bins {
            let r = *reference.get(k, t) as f64;
            let e = *estimate.get(k, t) as f64;
            let d = 10.0 * ((r * r).max(floor) / (e * e).max(floor)).log10();
            acc += d * d;
        }
        total += (acc / bins as f64).sqrt();
    }
    total / frames as f64
}

/// Dynamic range kept by [`log_spectral_distance`], in dB below the reference's peak.
pub const LSD_FLOOR_DB: f64 = 80.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_spectrograms_have_zero_distance() {
        let a = Matrix::from_vec(2, 2, vec![1.0f32, 2.0, 3.0, 4.0]);
        assert_eq!(spectral_convergence(&a, &a), 0.0);
        assert_eq!(log_spectral_distance(&a, &a), 0.0);
    }

    #[test]
    fn known_values() {
        let a = Matrix::from_vec(1, 2, vec![3.0f32, 4.0]);
        let b = Matrix::from_vec(1, 2, vec![0.0f32, 0.0]);
        assert!((spectral_convergence(&a, &b) - 1.0).abs() < 1e-12);
        // Doubling every magnitude is 20 log10(2) ~ 6.0206 dB everywhere.
        let c = a.map(|v| v * 2.0);
        assert!((log_spectral_distance(&c, &a) - 6.0206).abs() < 1e-3);
        // Differences far below the reference's peak are clamped away.
        let quiet_ref = Matrix::from_vec(1, 2, vec![1.0f32, 1e-6]);
        let quiet_est = Matrix::from_vec(1, 2, vec![1.0f32, 1e-9]);
        assert_eq!(log_spectral_distance(&quiet_ref, &quiet_est), 0.0);
    }
}
