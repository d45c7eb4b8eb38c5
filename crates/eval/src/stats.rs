//! The statistics of the evaluation suite, on plain vectors:
//! - Fréchet distance between Gaussians fitted to two sets of embeddings, the FAD of Kilgour
//!   et al., "Fréchet Audio Distance: A Metric for Evaluating Music Enhancement Algorithms"
//!   (2019), after the FID of Heusel et al. (2017);
//! - the unbiased kernel inception distance (squared MMD with the cubic polynomial kernel) of
//!   Bińkowski et al., "Demystifying MMD GANs" (2018), usable at 50-200 clips where FAD is
//!   strongly biased;
//! - percentile bootstrap intervals over clips (Efron & Tibshirani 1993);
//! - ROC AUC as the Mann-Whitney statistic with ties counted half (Hanley & McNeil 1982);
//! - KL divergence between tag distributions, as AudioLDM's evaluation pairs them (Liu et al.
//!   2023).

use musicdiff_common::Rng;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// A value with a 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// A value without an interval (low = high = value).
    pub fn exact(value: f64) -> Self {
        Self {
            value,
            low: value,
            high: value,
        }
    }
}

/// Resamples used for every bootstrap interval of the suite.
pub const BOOTSTRAP_RESAMPLES: usize = 200;

/// Mean and covariance of `rows` (each a vector of the same length `d`): `([d], [d, d])`.
fn gaussian(rows: &[&[f32]]) -> (DVector<f64>, DMatrix<f64>) {
    let n = rows.len();
    let d = rows[0].len();
    let mut mean = DVector::<f64>::zeros(d);
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r.iter()) {
            *m += v as f64;
        }
    }
    mean /= n as f64;
    // X: [n, d] centred; cov = X^T X / (n - 1).
    let x = DMatrix::<f64>::from_fn(n, d, |i, j| rows[i][j] as f64 - mean[j]);
    let cov = x.transpose() * &x / (n.saturating_sub(1).max(1)) as f64;
    (mean, cov)
}

/// The symmetric square root of a symmetric positive semi-definite matrix (negative
/// eigenvalues from rounding are clamped to zero).
fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = m.clone().symmetric_eigen();
    let s = eig.eigenvalues.map(|v| v.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&s) * eig.eigenvectors.transpose()
}

fn check_sets(metric: &'static str, a: &[&[f32]], b: &[&[f32]], min: usize) -> Result<usize> {
    if a.len() < min || b.len() < min {
        return Err(EvalError::Metric {
            metric,
            detail: format!(
                "needs at least {min} embeddings per set (got {} and {})",
                a.len(),
                b.len()
            ),
        });
    }
    let d = a[0].len();
    if d == 0 || a.iter().chain(b).any(|r| r.len() != d) {
        return Err(EvalError::Metric {
            metric,
            detail: "embeddings differ in length".into(),
        });
    }
    Ok(d)
}

/// Fréchet distance `|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))` between Gaussians
/// fitted to the two sets. `tr (C_a C_b)^(1/2)` is computed as the trace of the square root of
/// the symmetric `C_a^(1/2) C_b C_a^(1/2)`, which has the same eigenvalues and stays real.
pub fn frechet_distance(a: &[&[f32]], b: &[&[f32]]) -> Result<f64> {
    check_sets("FAD", a, b, 2)?;
    let (mu_a, cov_a) = gaussian(a);
    let (mu_b, cov_b) = gaussian(b);
    let diff = (&mu_a - &mu_b).norm_squared();
    let root_a = sqrtm_psd(&cov_a);
    let inner = &root_a * &cov_b * &root_a;
    // Symmetrise against rounding before the eigen-decomposition.
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_root: f64 = inner
        .symmetric_eigen()
        .eigenvalues
        .iter()
        .map(|v| v.max(0.0).sqrt())
        .sum();
    Ok((diff + cov_a.trace() + cov_b.trace() - 2.0 * tr_root).max(0.0))
}

/// Unbiased squared MMD with the kernel `k(x, y) = (x.y / d + 1)^3` (KID).
pub fn kernel_inception_distance(a: &[&[f32]], b: &[&[f32]]) -> Result<f64> {
    let d = check_sets("KID", a, b, 2)? as f64;
    let k = |x: &[f32], y: &[f32]| -> f64 {
        let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
        (dot / d + 1.0).powi(3)
    };
    let within = |s: &[&[f32]]| -> f64 {
        let n = s.len();
        let mut sum = 0.0;
        for i in 0..n {
            for j in (i + 1)..n {
                sum += k(s[i], s[j]);
            }
        }
        2.0 * sum / (n * (n - 1)) as f64
    };
    let mut cross = 0.0;
    for x in a {
        for y in b {
            cross += k(x, y);
        }
    }
    cross /= (a.len() * b.len()) as f64;
    Ok(within(a) + within(b) - 2.0 * cross)
}

/// Sets of embeddings grouped by clip: the bootstrap resamples clips, not the patches inside
/// them, since patches of one clip are not independent.
pub type Grouped<'a> = &'a [Vec<Vec<f32>>];

fn flatten<'a>(groups: Grouped<'a>, pick: &[usize]) -> Vec<&'a [f32]> {
    pick.iter()
        .flat_map(|&g| groups[g].iter().map(Vec::as_slice))
        .collect()
}

/// A distance between two sets of embeddings ([`frechet_distance`] or
/// [`kernel_inception_distance`]).
pub type SetDistance = fn(&[&[f32]], &[&[f32]]) -> Result<f64>;

/// A set distance (FAD or KID) between two grouped sets, with a 95% interval of
/// ±1.96 two-sample jackknife standard errors, leaving out one clip (all its patches) of either
/// set at a time (Efron & Stein 1981; Arvesen 1969 for two samples):
/// `SE^2 = (n_a - 1)/n_a Σ_i (θ_(-i) - θ̄_a)^2 + (n_b - 1)/n_b Σ_j (θ_(-j) - θ̄_b)^2`.
/// Not the bootstrap: a bootstrap resample repeats clips, which shrinks the sets' spread and
/// inflates a set distance, so its values sit above the estimate (with 8 clips the percentile
/// interval of FAD did not contain it); leaving one out repeats nothing.
pub fn distance_with_interval(metric: SetDistance, a: Grouped, b: Grouped) -> Result<Estimate> {
    let all = |n: usize| (0..n).collect::<Vec<_>>();
    let value = metric(&flatten(a, &all(a.len())), &flatten(b, &all(b.len())))?;
    let without = |n: usize, i: usize| (0..n).filter(|&k| k != i).collect::<Vec<_>>();
    let mut variance = 0.0;
    for (side, n) in [(0, a.len()), (1, b.len())] {
        if n < 3 {
            continue;
        }
        let thetas = (0..n)
            .map(|i| {
                let (pa, pb) = if side == 0 {
                    (without(n, i), all(b.len()))
                } else {
                    (all(a.len()), without(n, i))
                };
                metric(&flatten(a, &pa), &flatten(b, &pb))
            })
            .collect::<Result<Vec<f64>>>()?;
        let mean = thetas.iter().sum::<f64>() / n as f64;
        variance +=
            (n as f64 - 1.0) / n as f64 * thetas.iter().map(|t| (t - mean).powi(2)).sum::<f64>();
    }
    let half = 1.96 * variance.sqrt();
    Ok(Estimate {
        value,
        low: value - half,
        high: value + half,
    })
}

/// The mean of `values` with a bootstrap interval; `None` when there are no values.
pub fn mean_with_interval(values: &[f64], resamples: usize, seed: u64) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        s / n as f64
    };
    let value = mean(&mut values.iter().copied());
    let mut rng = Rng::for_item(seed, 0);
    let draws = (0..resamples)
        .map(|_| {
            mean(&mut (0..values.len()).map(|_| values[rng.range(0, values.len() as u64) as usize]))
        })
        .collect();
    Some(interval(value, draws))
}

/// A statistic of the clips `0..n` with a bootstrap interval from resampling the clips with
/// replacement; `f` receives the chosen clip indices and may decline (`None`) a resample that
/// leaves it undefined (those are skipped). `None` when `f` declines all clips.
pub fn bootstrap_clips(
    n: usize,
    resamples: usize,
    seed: u64,
    f: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Estimate> {
    let all: Vec<usize> = (0..n).collect();
    let value = f(&all)?;
    let mut rng = Rng::for_item(seed, 0);
    let mut draws = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let pick: Vec<usize> = (0..n).map(|_| rng.range(0, n as u64) as usize).collect();
        if let Some(v) = f(&pick) {
            draws.push(v);
        }
    }
    Some(interval(value, draws))
}

/// The 2.5% and 97.5% percentiles of `draws` around `value`.
fn interval(value: f64, mut draws: Vec<f64>) -> Estimate {
    if draws.is_empty() {
        return Estimate::exact(value);
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (draws.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        draws[lo] + (draws[hi] - draws[lo]) * (pos - lo as f64)
    };
    Estimate {
        value,
        low: at(0.025),
        high: at(0.975),
    }
}

/// ROC AUC of scores that should be higher for `positives` than for `negatives`: the share of
/// (positive, negative) pairs ordered correctly, ties counting half. 0.5 is chance. `None`
/// when either side is empty.
pub fn roc_auc(positives: &[f64], negatives: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    // Rank-sum form: sort everything once, give tied scores their average rank.
    let mut all: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (positives.len() as f64, negatives.len() as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// Floor on tag probabilities before normalising, so that a tag one side gives 0 does not
/// make the divergence infinite.
pub const KL_EPSILON: f64 = 1e-6;

/// `KL(p || q)` between two tag-probability vectors, each first normalised to sum to one (the
/// tags are independent sigmoids; normalising reads them as "which tags describe this clip",
/// the distribution AudioLDM's paired KL compares). `p` is the reference clip's.
pub fn tag_kl(p: &[f32], q: &[f32]) -> f64 {
    assert_eq!(p.len(), q.len(), "tag vectors differ in length");
    let norm = |v: &[f32]| -> Vec<f64> {
        let v: Vec<f64> = v.iter().map(|&x| (x as f64).max(KL_EPSILON)).collect();
        let s: f64 = v.iter().sum();
        v.into_iter().map(|x| x / s).collect()
    };
    let (p, q) = (norm(p), norm(q));
    p.iter().zip(&q).map(|(&a, &b)| a * (a / b).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rng: &mut Rng, n: usize, d: usize, shift: f64, scale: f64) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| (shift + scale * rng.normal()) as f32)
                    .collect()
            })
            .collect()
    }

    fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
        v.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn frechet_distance_matches_the_closed_form_for_diagonal_gaussians() {
        // Large samples of N(0, I) and N(m, s^2 I): FD -> d m^2 + d (1 - s)^2.
        let mut rng = Rng::for_item(3, 0);
        let (n, d) = (20_000, 4);
        let a = set(&mut rng, n, d, 0.0, 1.0);
        let b = set(&mut rng, n, d, 0.5, 2.0);
        let fd = frechet_distance(&refs(&a), &refs(&b)).unwrap();
        let expected = d as f64 * 0.25 + d as f64 * 1.0;
        assert!((fd - expected).abs() < 0.1, "{fd} vs {expected}");
        let same = frechet_distance(&refs(&a), &refs(&a)).unwrap();
        assert!(same.abs() < 1e-6, "{same}");
    }

    #[test]
    fn frechet_distance_handles_rank_deficient_covariances() {
        // Fewer samples than dimensions: covariances are singular, the distance stays finite
        // and non-negative.
        let mut rng = Rng::for_item(5, 0);
        let a = set(&mut rng, 10, 50, 0.0, 1.0);
        let b = set(&mut rng, 10, 50, 1.0, 1.0);
        let fd = frechet_distance(&refs(&a), &refs(&b)).unwrap();
        assert!(fd.is_finite() && fd > 0.0, "{fd}");
    }

    #[test]
    fn kid_is_unbiased_near_zero_for_the_same_distribution_and_grows_with_a_shift() {
        let mut rng = Rng::for_item(7, 0);
        let a = set(&mut rng, 200, 8, 0.0, 1.0);
        let b = set(&mut rng, 200, 8, 0.0, 1.0);
        let c = set(&mut rng, 200, 8, 1.0, 1.0);
        let same = kernel_inception_distance(&refs(&a), &refs(&b)).unwrap();
        let shifted = kernel_inception_distance(&refs(&a), &refs(&c)).unwrap();
        assert!(same.abs() < 0.05, "{same}");
        assert!(shifted > 10.0 * same.abs().max(0.01), "{shifted} vs {same}");
    }

    #[test]
    fn too_few_or_ragged_embeddings_are_refused() {
        let one = vec![vec![1.0f32, 2.0]];
        assert!(frechet_distance(&refs(&one), &refs(&one)).is_err());
        let ragged = vec![vec![1.0f32, 2.0], vec![1.0f32]];
        assert!(kernel_inception_distance(&refs(&ragged), &refs(&ragged)).is_err());
    }

    #[test]
    fn bootstrap_interval_contains_the_value_and_narrows_with_more_clips() {
        let mut rng = Rng::for_item(11, 0);
        let small: Vec<f64> = (0..20).map(|_| rng.normal()).collect();
        let large: Vec<f64> = (0..2000).map(|_| rng.normal()).collect();
        let s = mean_with_interval(&small, 500, 1).unwrap();
        let l = mean_with_interval(&large, 500, 1).unwrap();
        assert!(s.low <= s.value && s.value <= s.high);
        assert!(l.high - l.low < (s.high - s.low) / 3.0);
        assert!(mean_with_interval(&[], 10, 1).is_none());
    }

    #[test]
    fn jackknife_interval_brackets_the_value_and_narrows_with_more_clips() {
        let mut rng = Rng::for_item(13, 0);
        let a: Vec<Vec<Vec<f32>>> = (0..30).map(|_| set(&mut rng, 3, 4, 0.0, 1.0)).collect();
        let b: Vec<Vec<Vec<f32>>> = (0..30).map(|_| set(&mut rng, 3, 4, 1.0, 1.0)).collect();
        let e = distance_with_interval(frechet_distance, &a, &b).unwrap();
        assert!(e.low < e.value && e.value < e.high, "{e:?}");
        // Twice the clips, a narrower interval.
        let a2: Vec<Vec<Vec<f32>>> = (0..120).map(|_| set(&mut rng, 3, 4, 0.0, 1.0)).collect();
        let b2: Vec<Vec<Vec<f32>>> = (0..120).map(|_| set(&mut rng, 3, 4, 1.0, 1.0)).collect();
        let e2 = distance_with_interval(frechet_distance, &a2, &b2).unwrap();
        assert!(e2.high - e2.low < (e.high - e.low) * 0.8, "{e2:?} vs {e:?}");
    }

    #[test]
    fn roc_auc_is_one_for_separated_scores_half_for_ties_and_counts_ties_half() {
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(roc_auc(&[1.0, 1.0], &[1.0, 1.0]), Some(0.5));
        // One of four pairs tied, two right, one wrong: (2 + 0.5) / 4.
        assert_eq!(roc_auc(&[2.0, 3.0], &[2.0, 2.5]), Some(0.625));
        assert_eq!(roc_auc(&[], &[1.0]), None);
    }

    #[test]
    fn tag_kl_is_zero_for_equal_vectors_and_positive_otherwise() {
        let p = [0.9f32, 0.1, 0.5];
        assert!(tag_kl(&p, &p).abs() < 1e-12);
        assert!(tag_kl(&p, &[0.1, 0.9, 0.5]) > 0.1);
        // Zeros do not make it infinite.
        assert!(tag_kl(&[1.0, 0.0], &[0.0, 1.0]).is_finite());
    }

    proptest::proptest! {
        #[test]
        fn auc_of_swapped_sides_is_one_minus_auc(
            pos in proptest::collection::vec(-5.0f64..5.0, 1..20),
            neg in proptest::collection::vec(-5.0f64..5.0, 1..20),
        ) {
            let a = roc_auc(&pos, &neg).unwrap();
            let b = roc_auc(&neg, &pos).unwrap();
            proptest::prop_assert!((a + b - 1.0).abs() < 1e-12);
        }
    }
}
