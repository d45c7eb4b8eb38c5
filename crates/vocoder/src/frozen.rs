//! Inference of the Vocos generator ([`crate::network::Vocos`]) in plain `f32` loops and GEMMs,
//! for synthesis: the same arithmetic as the burn forward (ConvNeXt blocks of Liu et al. 2022 as
//! Vocos uses them, Siuzdak 2023), without the tensor library's per-op passes over memory.
//!
//! Why a second forward: a 10 s spectrogram is ~860 frames, a small problem, where the burn
//! graph spends most of its time outside the matrix products (the depthwise convolution as seven
//! shifted tensors, LayerNorm and the exact GELU as separate passes, allocation per op, and
//! threading overhead that made two cores slower than one). Here each block is one pass per
//! stage over a chunk of frames that stays in cache, the GELU reads a table, the matrix products
//! go to `gemm` single-threaded, and the chunks run on all cores. The weights are copied from
//! the burn module, so there is one source of truth; `tests::frozen_outputs_equal_the_burn_forward`
//! holds the two forwards to the same outputs, and `Vocos` stays the training path.
//!
//! Chunks see `receptive_frames` of context on each side, zero-padded at the chunk's edges, as
//! the chunked burn synthesis did: every output frame sees exactly what one pass would show it.

use rayon::prelude::*;

use crate::network::{LN_EPSILON, MAX_MAGNITUDE, Vocos};

/// Most output frames per chunk: activations of 512 x 576 floats (1.2 MB) stay in L2.
pub(crate) const MAX_CHUNK: usize = 512;

/// `GELU(x) = x Phi(x)` on a grid of `1 / GELU_STEPS_PER_UNIT` over `[-GELU_RANGE,
/// GELU_RANGE]`, linearly interpolated (error below `h^2 / 8 * max|GELU''| = 1.5e-6`); outside
/// it GELU is 0 or `x` to within 1e-14.
const GELU_RANGE: f32 = 8.0;
const GELU_STEPS_PER_UNIT: f32 = 256.0;

/// A LayerNorm's affine parameters.
#[derive(Clone, Debug)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A linear map `[d_in] -> [d_out]`: weights row-major `[d_in, d_out]` (burn's layout), bias.
#[derive(Clone, Debug)]
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

#[derive(Clone, Debug)]
struct Block {
    /// `[k, d]`, tap-major.
    dw_weight: Vec<f32>,
    dw_bias: Vec<f32>,
    norm: Norm,
    pw1: Dense,
    pw2: Dense,
    gamma: Vec<f32>,
}

/// A frozen copy of a [`Vocos`] for inference.
#[derive(Clone, Debug)]
pub(crate) struct FrozenVocos {
    n_mels: usize,
    dim: usize,
    kernel: usize,
    bins: usize,
    margin: usize,
    embed: Dense,
    embed_norm: Norm,
    blocks: Vec<Block>,
    final_norm: Norm,
    /// `[d, 2 bins]`: log-magnitudes, then phase parameters.
    head: Dense,
    gelu: Vec<f32>,
}

fn values(t: burn::prelude::Tensor<1>) -> Vec<f32> {
    crate::to_vec(t.into_data())
}

fn norm(n: &burn::nn::LayerNorm) -> Norm {
    let gamma = values(n.gamma.val());
    let beta = match &n.beta {
        Some(b) => values(b.val()),
        None => vec![0.0; gamma.len()],
    };
    Norm { gamma, beta }
}

fn dense(l: &burn::nn::Linear) -> Dense {
    let [d_in, d_out] = l.weight.val().dims();
    let weight = values(l.weight.val().reshape([d_in * d_out]));
    let bias = match &l.bias {
        Some(b) => values(b.val()),
        None => vec![0.0; d_out],
    };
    Dense {
        weight,
        bias,
        d_in,
        d_out,
    }
}

impl FrozenVocos {
    pub(crate) fn new(net: &Vocos) -> Self {
        let cfg = &net.config;
        let blocks = net
            .blocks
            .iter()
            .map(|b| {
                let [k, d] = b.dw_weight.val().dims();
                Block {
                    dw_weight: values(b.dw_weight.val().reshape([k * d])),
                    dw_bias: values(b.dw_bias.val()),
                    norm: norm(&b.norm),
                    pw1: dense(&b.pw1),
                    pw2: dense(&b.pw2),
                    gamma: values(b.gamma.val()),
                }
            })
            .collect();
        let n = (2.0 * GELU_RANGE * GELU_STEPS_PER_UNIT) as usize + 1;
        let gelu = (0..n)
            .map(|i| {
                let x = f64::from(-GELU_RANGE) + i as f64 / f64::from(GELU_STEPS_PER_UNIT);
                (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))) as f32
            })
            .collect();
        Self {
            n_mels: cfg.n_mels,
            dim: cfg.dim,
            kernel: cfg.kernel,
            bins: cfg.n_bins(),
            margin: cfg.receptive_frames(),
            embed: dense(&net.embed),
            embed_norm: norm(&net.embed_norm),
            blocks,
            final_norm: norm(&net.final_norm),
            head: dense(&net.head),
            gelu,
        }
    }

    /// `frames [t, n_mels]` (frame-major log-mel, floored) -> the head's magnitudes `[t, bins]`
    /// (`min(exp a, MAX_MAGNITUDE)`) and, when `with_phase`, its phase parameters `[t, bins]`.
    pub(crate) fn head_outputs(
        &self,
        frames: &[f32],
        t: usize,
        with_phase: bool,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        assert_eq!(frames.len(), t * self.n_mels, "[t, n_mels] input");
        let bins = self.bins;
        let mut mag = vec![0.0f32; t * bins];
        let mut phase = with_phase.then(|| vec![0.0f32; t * bins]);
        let threads = rayon::current_num_threads().max(1);
        let chunk = t.div_ceil(threads).clamp(1, MAX_CHUNK);
        // Each chunk writes its frames of the outputs in place.
        let span = chunk * bins;
        let phase_parts: Vec<Option<&mut [f32]>> = match phase.as_mut() {
            Some(p) => p.chunks_mut(span).map(Some).collect(),
            None => (0..t.div_ceil(chunk)).map(|_| None).collect(),
        };
        mag.par_chunks_mut(span)
            .zip(phase_parts)
            .enumerate()
            .for_each(|(i, (m, p))| self.chunk(frames, t, i * chunk, m, p));
        (mag, phase)
    }

    /// Output frames `start..start + len` into `mag` (and `phase`), each `[len, bins]`,
    /// computed over `lo..hi` (the margin on both sides).
    fn chunk(
        &self,
        frames: &[f32],
        t: usize,
        start: usize,
        mag: &mut [f32],
        phase: Option<&mut [f32]>,
    ) {
        let (d, k, m, bins) = (self.dim, self.kernel, self.n_mels, self.bins);
        let len = mag.len() / bins;
        let lo = start.saturating_sub(self.margin);
        let hi = (start + len + self.margin).min(t);
        let n = hi - lo;
        let half = k / 2;
        // 1. Embedding: k neighbouring frames side by side ([n, k * n_mels], zeros beyond the
        //    chunk), one linear map, LayerNorm.
        let mut stacked = vec![0.0f32; n * k * m];
        for r in 0..n {
            for j in 0..k {
                let src = (r + j).checked_sub(half).filter(|&s| s < n);
                if let Some(s) = src {
                    let from = (lo + s) * m;
                    stacked[(r * k + j) * m..(r * k + j + 1) * m]
                        .copy_from_slice(&frames[from..from + m]);
                }
            }
        }
        let mut x = vec![0.0f32; n * d];
        self.embed.apply(&stacked, n, &mut x);
        layer_norm(&mut x, d, &self.embed_norm);
        // 2. Blocks: x += gamma * W2 GELU(W1 LN(DWConv(x))).
        let mut h = vec![0.0f32; n * d];
        let mut u = vec![0.0f32; n * self.blocks.first().map_or(0, |b| b.pw1.d_out)];
        let mut v = vec![0.0f32; n * d];
        for b in &self.blocks {
            // [n, d]: the depthwise convolution, zero-padded at the chunk's edges.
            for r in 0..n {
                let out = &mut h[r * d..(r + 1) * d];
                out.copy_from_slice(&b.dw_bias);
                for j in 0..k {
                    let Some(s) = (r + j).checked_sub(half).filter(|&s| s < n) else {
                        continue;
                    };
                    let w = &b.dw_weight[j * d..(j + 1) * d];
                    for ((o, &xv), &wv) in out.iter_mut().zip(&x[s * d..(s + 1) * d]).zip(w) {
                        *o += xv * wv;
                    }
                }
            }
            layer_norm(&mut h, d, &b.norm);
            // [n, intermediate] -> GELU -> [n, d].
            b.pw1.apply(&h, n, &mut u);
            for val in u.iter_mut() {
                *val = self.gelu(*val);
            }
            b.pw2.apply(&u, n, &mut v);
            for (xr, vr) in x.chunks_mut(d).zip(v.chunks(d)) {
                for ((xv, &vv), &g) in xr.iter_mut().zip(vr).zip(&b.gamma) {
                    *xv += g * vv;
                }
            }
        }
        // 3. Head over the output frames only: magnitudes (and phase parameters).
        let rows = &mut x[(start - lo) * d..(start - lo + len) * d];
        layer_norm(rows, d, &self.final_norm);
        self.head.apply_columns(rows, len, 0, bins, mag);
        for v in mag.iter_mut() {
            *v = v.exp().min(MAX_MAGNITUDE as f32);
        }
        if let Some(p) = phase {
            self.head.apply_columns(rows, len, bins, bins, p);
        }
    }

    /// Exact GELU (erf form) from the table, without branches: inside the range the
    /// interpolated value; above it the table's last value (GELU(8) = 8) plus `x - 8`; below it
    /// the first (0).
    #[inline]
    fn gelu(&self, x: f32) -> f32 {
        let c = x.clamp(-GELU_RANGE, GELU_RANGE);
        let pos = (c + GELU_RANGE) * GELU_STEPS_PER_UNIT;
        let i = (pos as usize).min(self.gelu.len() - 2);
        let f = pos - i as f32;
        let (a, b) = (self.gelu[i], self.gelu[i + 1]);
        a + f * (b - a) + (x - c).max(0.0)
    }
}

impl Dense {
    /// `out [n, d_out] = x [n, d_in] W + b`.
    fn apply(&self, x: &[f32], n: usize, out: &mut [f32]) {
        self.apply_columns(x, n, 0, self.d_out, out);
    }

    /// Output columns `c0..c0 + cols` only: `out [n, cols] = x W[:, c0..c0 + cols] + b[c0..]`.
    fn apply_columns(&self, x: &[f32], n: usize, c0: usize, cols: usize, out: &mut [f32]) {
        assert!(c0 + cols <= self.d_out);
        assert!(x.len() >= n * self.d_in && out.len() >= n * cols);
        for row in out.chunks_mut(cols).take(n) {
            row.copy_from_slice(&self.bias[c0..c0 + cols]);
        }
        if n == 0 || cols == 0 {
            return;
        }
        // SAFETY: the asserts above keep every access inside the three slices: `out` holds n
        // rows of `cols` (row stride cols), `x` n rows of d_in (row stride d_in), and the
        // weight d_in rows of d_out of which columns c0..c0 + cols are read (row stride d_out).
        unsafe {
            gemm::gemm(
                n,
                cols,
                self.d_in,
                out.as_mut_ptr(),
                1,
                cols as isize,
                true,
                x.as_ptr(),
                1,
                self.d_in as isize,
                self.weight.as_ptr().add(c0),
                1,
                self.d_out as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// LayerNorm over the last axis of `x [rows, d]`, in place (biased variance, as burn's).
fn layer_norm(x: &mut [f32], d: usize, p: &Norm) {
    for row in x.chunks_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + LN_EPSILON as f32).sqrt();
        for ((v, &g), &b) in row.iter_mut().zip(&p.gamma).zip(&p.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{seeded_net, tiny};
    use burn::prelude::*;

    #[test]
    fn the_gelu_table_matches_the_erf_form() {
        let device = Device::flex();
        let (net, _rng) = seeded_net(&tiny(), 1, &device);
        let f = FrozenVocos::new(&net);
        let mut worst = 0.0f64;
        for i in -12000..12000 {
            let x = i as f64 / 997.0;
            let exact = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            worst = worst.max((f64::from(f.gelu(x as f32)) - exact).abs());
        }
        assert!(worst < 5e-6, "{worst}");
    }

    /// Both forwards give the same magnitudes and phase parameters, over several chunks (the
    /// seams included) and for inputs shorter than the margin.
    #[test]
    fn frozen_outputs_equal_the_burn_forward() {
        let device = Device::flex();
        let cfg = crate::VocoderConfig {
            layers: 3,
            ..tiny()
        };
        let (net, _rng) = seeded_net(&cfg, 3, &device);
        let f = FrozenVocos::new(&net);
        for t in [1, 5, 2 * MAX_CHUNK + 37] {
            let frames: Vec<f32> = (0..t * 80)
                .map(|i| ((i * 53 % 97) as f32 / 97.0) * 8.0 - 9.0)
                .collect();
            let input =
                Tensor::<3>::from_data(TensorData::new(frames.clone(), [1, t, 80]), &device);
            let (mag, p) = net.head_outputs(input);
            let (fm, fp) = f.head_outputs(&frames, t, true);
            for (name, a, b) in [
                ("magnitude", crate::to_vec(mag.into_data()), fm),
                ("phase", crate::to_vec(p.into_data()), fp.unwrap()),
            ] {
                assert_eq!(a.len(), b.len());
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs() / (1e-3 + x.abs()))
                    .fold(0.0f32, f32::max);
                assert!(
                    worst < 1e-3,
                    "{name}, {t} frames: relative difference {worst}"
                );
            }
            assert!(f.head_outputs(&frames, t, false).1.is_none());
        }
    }
}
