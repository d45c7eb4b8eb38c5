//! The cosine schedule against diffusers' DDPMScheduler("squaredcos_cap_v2"), golden values from
//! `tests/fixtures/diffusion/make_schedule_golden.py`. diffusers builds its betas in float32,
//! so the comparison allows float32 rounding (and its accumulation in the cumulative product).

use std::path::PathBuf;

use musicdiff_diffusion::schedule::CosineSchedule;
use musicdiff_dsp::npy;

fn golden(name: &str) -> Vec<f64> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/diffusion")
        .join(name);
    npy::read(&p).unwrap().data
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-12))
        .fold(0.0, f64::max)
}

#[test]
fn betas_and_alphas_cumprod_match_diffusers() {
    let s = CosineSchedule::default();
    let betas = s.betas(1000);
    let err = max_rel(&betas, &golden("cosine_betas_1000.npy"));
    assert!(err < 1e-5, "betas: relative error {err}");
    let cumprod = s.alphas_cumprod(1000);
    // The last value (2.4e-9) carries the largest float32 accumulation error in diffusers.
    let want = golden("cosine_alphas_cumprod_1000.npy");
    let err = max_rel(&cumprod[..999], &want[..999]);
    assert!(err < 1e-4, "alphas_cumprod: relative error {err}");
    // The continuous schedule agrees with the discrete one at the grid points.
    for i in [0usize, 250, 500, 750] {
        let t = (i + 1) as f64 / 1000.0;
        let rel = (s.alpha_bar(t) - cumprod[i]).abs() / cumprod[i];
        assert!(rel < 1e-9, "step {i}: {rel}");
    }
}
