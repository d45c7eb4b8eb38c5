//! How audible the joins of `fill` and `continue` are. A seam is good when the music on its
//! two sides differs no more than it does at the same place in untouched audio, so every
//! distance across a seam is reported beside the same distance at the same time in the
//! reference clip the edit started from:
//! - log-mel statistics: per-band mean and standard deviation over [`SEAM_WINDOW_SECONDS`]
//!   on each side, compared by RMS difference (the texture-statistics view of McDermott &
//!   Simoncelli 2011, reduced to its first two moments);
//! - an embedding distance, computed by the suite with the judge over longer windows.

use musicdiff_dsp::matrix::Matrix;

/// Length of the window on each side of a seam for the log-mel statistics.
pub const SEAM_WINDOW_SECONDS: f64 = 0.5;

/// Per-band mean and standard deviation of columns `a..b` of a log-mel `[n_mels, frames]`,
/// concatenated (`[2 n_mels]`).
fn window_statistics(log_mel: &Matrix<f32>, a: usize, b: usize) -> Vec<f64> {
    let n = (b - a).max(1) as f64;
    let mut out = Vec::with_capacity(2 * log_mel.rows());
    let mut stds = Vec::with_capacity(log_mel.rows());
    for r in 0..log_mel.rows() {
        let row = &log_mel.row(r)[a..b];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        out.push(mean);
        stds.push(var.sqrt());
    }
    out.extend(stds);
    out
}

/// RMS difference between the log-mel statistics of the `window` frames before `frame` and
/// the `window` frames from it (both clipped to the spectrogram). `None` when either side is
/// empty.
pub fn statistics_distance(log_mel: &Matrix<f32>, frame: usize, window: usize) -> Option<f64> {
    let cols = log_mel.cols();
    if frame == 0 || frame >= cols || window == 0 {
        return None;
    }
    let before = window_statistics(log_mel, frame.saturating_sub(window), frame);
    let after = window_statistics(log_mel, frame, (frame + window).min(cols));
    let sq: f64 = before
        .iter()
        .zip(&after)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    Some((sq / before.len() as f64).sqrt())
}

/// Euclidean distance between two embeddings.
pub fn embedding_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(level_before: f32, level_after: f32, seam: usize, cols: usize) -> Matrix<f32> {
        let mut m = Matrix::zeros(3, cols);
        for r in 0..3 {
            for t in 0..cols {
                m.row_mut(r)[t] =
                    if t < seam { level_before } else { level_after } + (t % 2) as f32;
            }
        }
        m
    }

    #[test]
    fn a_level_jump_at_the_seam_is_measured_and_a_smooth_join_is_not() {
        let jump = steps(0.0, 3.0, 50, 100);
        let smooth = steps(0.0, 0.0, 50, 100);
        let d_jump = statistics_distance(&jump, 50, 20).unwrap();
        let d_smooth = statistics_distance(&smooth, 50, 20).unwrap();
        assert!(d_smooth < 1e-9, "{d_smooth}");
        // Means differ by 3 in every band, deviations agree: sqrt(3 * 9 / 6).
        assert!((d_jump - (27.0f64 / 6.0).sqrt()).abs() < 1e-9, "{d_jump}");
    }

    #[test]
    fn seams_at_the_edges_have_no_distance() {
        let m = steps(0.0, 1.0, 5, 10);
        assert_eq!(statistics_distance(&m, 0, 4), None);
        assert_eq!(statistics_distance(&m, 10, 4), None);
        assert!(statistics_distance(&m, 9, 4).is_some());
    }

    #[test]
    fn embedding_distance_is_euclidean() {
        assert_eq!(embedding_distance(&[0.0, 3.0], &[4.0, 0.0]), 5.0);
    }
}
