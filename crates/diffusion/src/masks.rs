//! Editing masks over a sequence of tokens, mixed per batch as JEN-1 trains one model for
//! generation, in-painting and continuation. `true` marks a known (kept) token, `false` one to
//! generate; the model sees the known tokens beside the noise, and the loss covers only the
//! tokens to generate.

/// Which task a mask trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// Nothing known: plain text-to-music generation.
    Full,
    /// One to three spans regenerated inside known audio (filling).
    Spans,
    /// A known prefix, the rest generated (continuation).
    Prefix,
    /// Many short gaps (4 to 8 of 1 to 4 tokens each) scattered over known audio: filling at
    /// the scale of a note or a beat, and a denoising task closer to masked modelling.
    Scattered,
}

/// Shares of each kind in a batch; they need not sum to 1 (they are normalised).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskMix {
    pub full: f64,
    pub spans: f64,
    pub prefix: f64,
    pub scattered: f64,
}

impl Default for MaskMix {
    fn default() -> Self {
        Self {
            full: 0.5,
            spans: 0.25,
            prefix: 0.25,
            scattered: 0.0,
        }
    }
}

impl MaskMix {
    /// Picks a kind from a uniform number `u` in [0, 1).
    pub fn pick(&self, u: f64) -> MaskKind {
        // Without scattered gaps the draw is the same as before they existed.
        let total = (self.full + self.spans + self.prefix + self.scattered).max(f64::MIN_POSITIVE);
        let u = u * total;
        if u < self.full {
            MaskKind::Full
        } else if u < self.full + self.spans {
            MaskKind::Spans
        } else if self.scattered <= 0.0 || u < self.full + self.spans + self.prefix {
            MaskKind::Prefix
        } else {
            MaskKind::Scattered
        }
    }
}

/// A mask of `len` tokens of `kind`, drawing uniform numbers in [0, 1) from `uniform`.
/// Spans cover 20-60% of the sequence in total; prefixes keep 25-75% of it; scattered gaps
/// are 4-8 runs of 1-4 tokens (overlaps merge). Every mask but an empty one leaves at least
/// one token to generate.
pub fn sample(kind: MaskKind, len: usize, uniform: &mut dyn FnMut() -> f64) -> Vec<bool> {
    let mut keep = vec![true; len];
    if len == 0 {
        return keep;
    }
    let frac = |lo: f64, hi: f64, u: f64| lo + (hi - lo) * u;
    match kind {
        MaskKind::Full => keep.fill(false),
        MaskKind::Prefix => {
            let n = ((len as f64 * frac(0.25, 0.75, uniform())).round() as usize).min(len - 1);
            keep[n..].fill(false);
        }
        MaskKind::Spans => {
            let n_spans = 1 + (uniform() * 3.0) as usize % 3;
            let total = ((len as f64 * frac(0.2, 0.6, uniform())).round() as usize).max(1);
            let each = (total / n_spans).max(1);
            for _ in 0..n_spans {
                let start = (uniform() * (len - each.min(len) + 1) as f64) as usize;
                keep[start..(start + each).min(len)].fill(false);
            }
        }
        MaskKind::Scattered => {
            let n_gaps = 4 + (uniform() * 5.0) as usize % 5;
            for _ in 0..n_gaps {
                let each = (1 + (uniform() * 4.0) as usize % 4).min(len);
                let start = (uniform() * (len - each + 1) as f64) as usize;
                keep[start..(start + each).min(len)].fill(false);
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn masks_keep_what_they_keep() {
        let mut u = lcg(1);
        for len in [1usize, 2, 7, 64, 257] {
            for _ in 0..50 {
                assert!(sample(MaskKind::Full, len, &mut u).iter().all(|&k| !k));
                let p = sample(MaskKind::Prefix, len, &mut u);
                let known = p.iter().take_while(|&&k| k).count();
                assert!(p[known..].iter().all(|&k| !k), "prefix must be contiguous");
                assert!(known < len, "something to generate");
                if len >= 8 {
                    let share = known as f64 / len as f64;
                    assert!((0.2..=0.8).contains(&share), "{share}");
                }
                let s = sample(MaskKind::Spans, len, &mut u);
                let generated = s.iter().filter(|&&k| !k).count();
                assert!(generated >= 1);
                if len >= 64 {
                    assert!(
                        generated as f64 <= 0.61 * len as f64,
                        "{generated} of {len}"
                    );
                }
                let g = sample(MaskKind::Scattered, len, &mut u);
                let gaps = g.iter().filter(|&&k| !k).count();
                assert!(gaps >= 1 && gaps <= 32.min(len), "{gaps} of {len}");
                // Runs of generated tokens: at most 8, none longer than 4 unless two merged.
                let runs = g.windows(2).filter(|w| w[0] && !w[1]).count() + usize::from(!g[0]);
                assert!(runs <= 8, "{runs} runs");
            }
        }
    }

    #[test]
    fn the_mix_picks_by_share() {
        let mix = MaskMix::default();
        assert_eq!(mix.pick(0.1), MaskKind::Full);
        assert_eq!(mix.pick(0.6), MaskKind::Spans);
        assert_eq!(mix.pick(0.9), MaskKind::Prefix);
        let only_prefix = MaskMix {
            full: 0.0,
            spans: 0.0,
            prefix: 1.0,
            scattered: 0.0,
        };
        assert_eq!(only_prefix.pick(0.0), MaskKind::Prefix);
        // A mix without scattered gaps never picks them, even at the top of the range.
        assert_eq!(mix.pick(0.999_999_999), MaskKind::Prefix);
        let with_gaps = MaskMix {
            scattered: 0.25,
            ..MaskMix::default()
        };
        assert_eq!(with_gaps.pick(0.95), MaskKind::Scattered);
        assert_eq!(with_gaps.pick(0.7), MaskKind::Prefix);
    }
}
