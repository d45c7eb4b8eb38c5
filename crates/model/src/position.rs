//! Position and scalar encodings: sinusoidal features (Vaswani et al., "Attention Is All You
//! Need", 2017; DiT's timestep embedding uses the same form), the fixed sinusoidal position
//! table, and rotary position embeddings in the rotate-half form of GPT-NeoX (Su et al.,
//! "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021).

use burn::prelude::*;

/// Frequencies `10000^(-i / half)` for `i < half`, as in DiT's `timestep_embedding`.
fn frequencies(half: usize) -> Vec<f32> {
    (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect()
}

/// `values [B]` -> `[B, dim]`: `[cos(v f_0..f_{h-1}), sin(v f_0..f_{h-1})]` (zero-padded when
/// `dim` is odd).
pub fn sinusoid_features(values: Tensor<1>, dim: usize) -> Tensor<2> {
    let [b] = values.dims();
    let device = values.device();
    let half = dim / 2;
    let f = Tensor::<1>::from_floats(frequencies(half).as_slice(), &device).reshape([1, half]);
    // [B, 1] * [1, half] -> [B, half]
    let args = values.reshape([b, 1]) * f;
    let mut parts = vec![args.clone().cos(), args.sin()];
    if dim % 2 == 1 {
        parts.push(Tensor::zeros([b, 1], &device));
    }
    Tensor::cat(parts, 1)
}

/// The fixed sinusoidal table `[n, dim]` of positions `0..n`.
pub fn sinusoidal_table(n: usize, dim: usize, device: &Device) -> Tensor<2> {
    let pos: Vec<f32> = (0..n).map(|i| i as f32).collect();
    sinusoid_features(Tensor::from_floats(pos.as_slice(), device), dim)
}

/// Rotary tables `(cos, sin)`, each `[n, dh]`: angle `p * theta^(-2i/dh)` for position `p`,
/// repeated over the two halves of the head (rotate-half layout).
pub fn rope_tables(n: usize, dh: usize, theta: f64, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let half = dh / 2;
    let mut cos = Vec::with_capacity(n * dh);
    let mut sin = Vec::with_capacity(n * dh);
    for p in 0..n {
        for j in 0..dh {
            let i = j % half;
            let angle = p as f64 * theta.powf(-2.0 * i as f64 / dh as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (
        Tensor::<1>::from_floats(cos.as_slice(), device).reshape([n, dh]),
        Tensor::<1>::from_floats(sin.as_slice(), device).reshape([n, dh]),
    )
}

/// Rotates `x [B, H, N, dh]` by position: `x cos + rotate_half(x) sin`, where
/// `rotate_half([a, b]) = [-b, a]` over the two halves of the head.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [_, _, n, dh] = x.dims();
    let half = dh / 2;
    let a = x.clone().narrow(3, 0, half);
    let b = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![b.neg(), a], 3);
    let cos = cos.clone().narrow(0, 0, n).unsqueeze::<4>();
    let sin = sin.clone().narrow(0, 0, n).unsqueeze::<4>();
    x * cos + rotated * sin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec2(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn sinusoid_features_match_the_formula() {
        let device = Device::flex();
        let t = Tensor::<1>::from_floats([0.0, 3.5], &device);
        let f = vec2(sinusoid_features(t, 8));
        let freqs = frequencies(4);
        for (row, v) in [0.0f32, 3.5].iter().enumerate() {
            for i in 0..4 {
                assert!((f[row * 8 + i] - (v * freqs[i]).cos()).abs() < 1e-6);
                assert!((f[row * 8 + 4 + i] - (v * freqs[i]).sin()).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn rope_preserves_norms_and_depends_only_on_offsets() {
        let device = Device::flex();
        let (n, dh) = (6, 8);
        let (cos, sin) = rope_tables(n, dh, 10000.0, &device);
        // The same vector at every position.
        let q: Vec<f32> = (0..dh).map(|i| (i as f32 * 0.7).sin()).collect();
        let k: Vec<f32> = (0..dh).map(|i| (i as f32 * 0.3).cos()).collect();
        let rep = |v: &[f32]| {
            let all: Vec<f32> = (0..n).flat_map(|_| v.iter().copied()).collect();
            Tensor::<1>::from_floats(all.as_slice(), &device).reshape([1, 1, n, dh])
        };
        let rq: Vec<f32> = apply_rope(rep(&q), &cos, &sin)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let rk: Vec<f32> = apply_rope(rep(&k), &cos, &sin)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let dot =
            |i: usize, j: usize| -> f32 { (0..dh).map(|c| rq[i * dh + c] * rk[j * dh + c]).sum() };
        for p in 0..n {
            assert!((norm(&rq[p * dh..(p + 1) * dh]) - norm(&q)).abs() < 1e-5);
        }
        // <R_i q, R_j k> depends on i - j only.
        assert!((dot(3, 1) - dot(4, 2)).abs() < 1e-5);
        assert!((dot(0, 0) - dot(5, 5)).abs() < 1e-5);
        assert!((dot(1, 3) - dot(3, 1)).abs() > 1e-4, "direction matters");
    }
}
