//! Log-mel matrices to tokens and back. One token holds `P` consecutive frames of every mel
//! band (a ViT patch that spans the whole frequency axis), laid out band-major inside the
//! token: value `(m, p)` of token `n` is frame `n P + p` of band `m`.

/// `mel [n_mels, frames]` (row-major, `frames = tokens * p`) -> `[tokens, n_mels * p]`.
pub fn patchify(mel: &[f32], n_mels: usize, p: usize) -> Vec<f32> {
    let frames = mel.len() / n_mels;
    let tokens = frames / p;
    let mut out = vec![0.0f32; tokens * n_mels * p];
    for m in 0..n_mels {
        let row = &mel[m * frames..(m + 1) * frames];
        for n in 0..tokens {
            out[n * n_mels * p + m * p..n * n_mels * p + (m + 1) * p]
                .copy_from_slice(&row[n * p..(n + 1) * p]);
        }
    }
    out
}

/// The inverse of [`patchify`]: `[tokens, n_mels * p]` -> `[n_mels, tokens * p]`.
pub fn unpatchify(tokens: &[f32], n_mels: usize, p: usize) -> Vec<f32> {
    let n = tokens.len() / (n_mels * p);
    let frames = n * p;
    let mut out = vec![0.0f32; n_mels * frames];
    for t in 0..n {
        for m in 0..n_mels {
            out[m * frames + t * p..m * frames + (t + 1) * p]
                .copy_from_slice(&tokens[t * n_mels * p + m * p..t * n_mels * p + (m + 1) * p]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_token_holds_consecutive_frames_of_every_band() {
        // 2 bands x 4 frames, P = 2: value = 10 * band + frame.
        let mel = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
        assert_eq!(
            patchify(&mel, 2, 2),
            vec![0.0, 1.0, 10.0, 11.0, 2.0, 3.0, 12.0, 13.0]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
        #[test]
        fn unpatchify_inverts_patchify(n_mels in 1usize..6, p in 1usize..5, tokens in 1usize..7, seed in 0u32..1000) {
            let mel: Vec<f32> = (0..n_mels * p * tokens).map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32).collect();
            let t = patchify(&mel, n_mels, p);
            prop_assert_eq!(t.len(), mel.len());
            prop_assert_eq!(unpatchify(&t, n_mels, p), mel);
        }
    }
}
