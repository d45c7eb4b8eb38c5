//! Property tests: round trips that must hold for any input, not just the fixtures.
//! The generator seed is fixed so that CI runs are repeatable; change `SEED` locally to
//! explore other inputs.

use musicdiff_dsp::audio::{mix_to_mono, resample};
use musicdiff_dsp::stft::{Stft, StftConfig};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const SEED: u64 = 0x6d75_7369_6364_6966;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: RngSeed::Fixed(SEED),
        ..ProptestConfig::default()
    })]

    /// istft(stft(x)) == x for any signal and any geometry whose hop keeps the window sum
    /// of squares away from zero (hop <= win / 2 for a Hann window).
    #[test]
    fn istft_inverts_stft(
        signal in prop::collection::vec(-1.0f64..1.0, 1..3000),
        log_n_fft in 4u32..11,
        win_frac in 0.5f64..=1.0,
        hop_frac in 0.05f64..=0.5,
    ) {
        let n_fft = 1usize << log_n_fft;
        let win = ((n_fft as f64 * win_frac) as usize).max(4);
        let hop = ((win as f64 * hop_frac) as usize).max(1);
        let stft = Stft::<f64>::new(StftConfig { n_fft, hop_length: hop, win_length: win, center: true }).unwrap();
        let y = stft.inverse(&stft.forward(&signal), Some(signal.len()));
        prop_assert_eq!(y.len(), signal.len());
        let err = signal.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        prop_assert!(err < 1e-9, "n_fft {} win {} hop {}: max error {}", n_fft, win, hop, err);
    }

    /// Resampling a tone well below both Nyquist frequencies up and back down gives the tone,
    /// to within the resampler's passband ripple (about -75 dB; a shift of a fraction of a
    /// sample, the bug this caught, gives errors of 1e-3 to 1e-1).
    #[test]
    fn resample_up_then_down_preserves_a_band_limited_tone(
        freq in 50.0f32..4000.0,
        phase in 0.0f32..std::f32::consts::TAU,
        (from, to) in prop::sample::select(vec![(22050u32, 44100u32), (16000, 48000), (22050, 32000), (44100, 96000)]),
    ) {
        let n = from as usize;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / from as f32 + phase).sin() * 0.5)
            .collect();
        let up = resample(&x, from, to).unwrap();
        let back = resample(&up, to, from).unwrap();
        prop_assert_eq!(back.len(), x.len());
        // Ignore 200 ms at each edge, where the tone starts and stops abruptly and the
        // resampler's long anti-aliasing filter rings.
        let edge = n / 5;
        let err = x[edge..n - edge].iter().zip(&back[edge..n - edge]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        prop_assert!(err < 5e-4, "{} Hz via {} Hz: max error {}", freq, to, err);
    }

    /// Mixing identical channels to mono gives that channel exactly.
    #[test]
    fn mixdown_of_identical_channels_is_the_channel(
        channel in prop::collection::vec(-1.0f32..1.0, 0..500),
        n_channels in 1usize..8,
    ) {
        let channels = vec![channel.clone(); n_channels];
        prop_assert_eq!(mix_to_mono(&channels), channel);
    }
}
