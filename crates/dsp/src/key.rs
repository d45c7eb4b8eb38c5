//! Global key estimation (Krumhansl-Schmuckler on a chroma summed over the clip), key names,
//! and the MIREX weighted key score.
//!
//! Chroma: the STFT (8192-point Hann window at 22050 Hz, hop 2048) of the clip, each bin from
//! 55 Hz to 5 kHz assigned to the pitch class of its centre frequency in equal temperament
//! (A4 = 440 Hz) with a triangular weight that falls to zero half-way between semitones, so that
//! bins between two pitches count for neither; bins contribute their magnitude, summed over
//! the whole clip (a long-term pitch-class profile; Gómez 2006, "Tonal description of music
//! audio signals", PhD thesis, UPF). Below 55 Hz the 2.7 Hz bins are wider than a semitone.
//!
//! Key: the Pearson correlation of that chroma with a major and a minor key profile rotated
//! to each of the 12 tonics; the best of the 24 wins (the Krumhansl-Schmuckler algorithm,
//! Krumhansl 1990, "Cognitive foundations of musical pitch", ch. 4). The profiles are
//! Temperley's Kostka-Payne pitch-class frequencies (Temperley 2007, "Music and Probability";
//! the values as in Humdrum `keycor` and music21). Krumhansl & Kessler's probe-tone profiles
//! (1982), Temperley's 1999 profiles ("What's key for key? The Krumhansl-Schmuckler
//! key-finding algorithm reconsidered", Music Perception 17(1)), Bellman-Budge's and Sapp's
//! simple weights are options: on the development half of the corpus Kostka-Payne scored best
//! and Krumhansl-Kessler worst, magnitude beat energy and log-compressed chroma, and the
//! whole-clip sum beat normalising each frame first (`docs/estimators.md`).
//!
//! The score is MIREX's (2005 audio key detection; as `mir_eval.key.weighted_score`): 1 for
//! the same key, 0.5 when the estimate is a perfect fifth above the truth in the same mode,
//! 0.3 for the relative major/minor, 0.2 for the parallel major/minor, 0 otherwise.

use std::fmt;

use crate::error::{DspError, Result};
use crate::stft::{Stft, StftConfig};
use crate::tempo::{ANALYSIS_RATE, prepare};

/// Major or minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Major,
    Minor,
}

/// A key: tonic pitch class (0 = C, 1 = C#/Db, ..., 11 = B) and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub tonic: u8,
    pub mode: Mode,
}

/// Tonic names used by [`Key`]'s `Display`.
const TONIC_NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

impl Key {
    /// A key from a tonic pitch class (taken modulo 12) and a mode.
    pub fn new(tonic: u8, mode: Mode) -> Self {
        Self {
            tonic: tonic % 12,
            mode,
        }
    }

    /// All 24 keys, majors first, each from C upwards.
    pub fn all() -> impl Iterator<Item = Key> {
        [Mode::Major, Mode::Minor]
            .into_iter()
            .flat_map(|m| (0..12).map(move |t| Key::new(t, m)))
    }

    /// Reads a key name: a letter A-G (either case), accidentals (`#`, `b`, `♯`, `♭`, or the
    /// words `sharp`/`flat`, repeatable), then a mode: nothing or `major`/`maj`/`M` for major;
    /// `minor`/`min`/`m` for minor. "A minor", "F# major", "Bb major", "A min", "Am", "e minor",
    /// "C", "F sharp minor" and "B flat major" (the corpus's spelling) all read.
    ///
    /// Church modes, which the corpus's folk tunes carry from their ABC `K:` field ("A
    /// dorian", "D mixolydian"), keep their tonic and map to the major or minor mode with the
    /// same third: ionian, lydian and mixolydian to major; dorian, phrygian, aeolian and
    /// locrian to minor (also as ABC's three-letter abbreviations: "Ador", "Dmix"). The tonic
    /// is what a listener hears as home, so an estimator that finds it is right on the tonic;
    /// `docs/estimators.md` reports the modal tunes separately. Anything else is `None`.
    pub fn parse(s: &str) -> Option<Key> {
        let s = s.trim();
        let mut chars = s.chars();
        let letter = chars.next()?.to_ascii_uppercase();
        let natural: i32 = match letter {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            'B' => 11,
            _ => return None,
        };
        let mut rest = chars.as_str();
        let mut shift = 0i32;
        loop {
            let trimmed = rest.trim_start_matches([' ', '-']);
            if let Some(r) = rest.strip_prefix(['#', '♯']) {
                shift += 1;
                rest = r;
            } else if let Some(r) = rest.strip_prefix(['b', '♭']) {
                shift -= 1;
                rest = r;
            } else if let Some(r) = strip_word(trimmed, "sharp") {
                shift += 1;
                rest = r;
            } else if let Some(r) = strip_word(trimmed, "flat") {
                shift -= 1;
                rest = r;
            } else {
                break;
            }
        }
        let word = rest.trim();
        let mode = if word == "M" {
            Mode::Major
        } else {
            match word.to_lowercase().as_str() {
                "" | "major" | "maj" | "ionian" | "ion" | "lydian" | "lyd" | "mixolydian"
                | "mix" => Mode::Major,
                "m" | "minor" | "min" | "aeolian" | "aeo" | "dorian" | "dor" | "phrygian"
                | "phr" | "locrian" | "loc" => Mode::Minor,
                _ => return None,
            }
        };
        Some(Key::new((natural + shift).rem_euclid(12) as u8, mode))
    }

    /// The relative key (A minor <-> C major).
    pub fn relative(self) -> Key {
        match self.mode {
            Mode::Major => Key::new(self.tonic + 9, Mode::Minor),
            Mode::Minor => Key::new(self.tonic + 3, Mode::Major),
        }
    }
}

/// `s` without a leading `word` (case-insensitive) that is followed by a word boundary.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let tail = &s[word.len()..];
    (head.eq_ignore_ascii_case(word) && !tail.starts_with(|c: char| c.is_alphanumeric()))
        .then_some(tail)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Major => "major",
            Mode::Minor => "minor",
        };
        write!(f, "{} {mode}", TONIC_NAMES[(self.tonic % 12) as usize])
    }
}

/// A global key estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEstimate {
    pub key: Key,
    /// Pearson correlation of the clip's chroma with the winning key profile, in [-1, 1].
    pub correlation: f64,
}

/// Key profiles, major and minor, from the tonic upwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyProfiles {
    /// Krumhansl & Kessler 1982 probe-tone ratings.
    KrumhanslKessler,
    /// Temperley 1999.
    Temperley,
    /// Temperley 2007 ("Music and Probability", MIT Press): pitch-class frequencies in the
    /// Kostka-Payne harmony textbook's excerpts. The default: best on the corpus.
    #[default]
    TemperleyKostkaPayne,
    /// Bellman 2005 ("About the determination of key of a musical excerpt", CMMR): pitch-class
    /// durations in classical chords.
    BellmanBudge,
    /// Sapp 2011 (Humdrum `keycor` "simple" weights): 2 for tonic and dominant, 1 for the
    /// other scale degrees (natural minor with half weight on both sevenths).
    Sapp,
}

impl KeyProfiles {
    /// (major, minor) profiles.
    pub fn profiles(self) -> ([f64; 12], [f64; 12]) {
        match self {
            Self::KrumhanslKessler => (
                [
                    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
                ],
                [
                    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
                ],
            ),
            Self::Temperley => (
                [5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0],
                [5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0],
            ),
            Self::TemperleyKostkaPayne => (
                [
                    0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057,
                    0.400,
                ],
                [
                    0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133,
                    0.330,
                ],
            ),
            Self::BellmanBudge => (
                [
                    16.80, 0.86, 12.95, 1.41, 13.49, 11.93, 1.25, 20.28, 1.80, 8.04, 0.62, 10.57,
                ],
                [
                    18.16, 0.69, 12.99, 13.34, 1.07, 11.15, 1.38, 21.07, 7.49, 1.53, 0.92, 10.21,
                ],
            ),
            Self::Sapp => (
                [2.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 1.0],
                [2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.5, 0.5],
            ),
        }
    }
}

/// How each STFT bin's magnitude enters the chroma.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChromaCompression {
    /// `|X|^2`.
    Energy,
    /// `|X|` (the default).
    #[default]
    Magnitude,
    /// `ln(1 + 100 |X|)`, `|X|` relative to the clip's peak.
    Log,
}

/// Settings of [`estimate_key_with`]; the defaults are what [`estimate_key`] uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyOptions {
    pub profiles: KeyProfiles,
    pub compression: ChromaCompression,
    /// Scale each frame's chroma to a maximum of 1 before summing.
    pub normalise_frames: bool,
    /// Frequency range of the bins that enter the chroma, in Hz.
    pub fmin: f64,
    pub fmax: f64,
}

impl Default for KeyOptions {
    fn default() -> Self {
        Self {
            profiles: KeyProfiles::TemperleyKostkaPayne,
            compression: ChromaCompression::Magnitude,
            normalise_frames: false,
            fmin: 55.0,
            fmax: 5000.0,
        }
    }
}

/// FFT size and hop of the chroma STFT at [`ANALYSIS_RATE`] (2.7 Hz bins, 93 ms hop).
const N_FFT: usize = 8192;
const HOP: usize = 2048;
/// Shortest clip accepted, in seconds.
pub const MIN_KEY_SECONDS: f64 = 1.0;

/// Chroma of mono `audio` at [`ANALYSIS_RATE`] summed over the clip, C first.
pub fn chroma(audio: &[f32], opts: &KeyOptions) -> Result<[f64; 12]> {
    if !(opts.fmin > 0.0 && opts.fmax > opts.fmin && opts.fmax <= ANALYSIS_RATE as f64 / 2.0) {
        return Err(DspError::invalid(
            "chroma range",
            format!(
                "{}..{} Hz must be positive, increasing and below Nyquist",
                opts.fmin, opts.fmax
            ),
        ));
    }
    // Bin -> (pitch class, weight).
    let mut map = Vec::new();
    for k in 1..N_FFT / 2 + 1 {
        let f = k as f64 * ANALYSIS_RATE as f64 / N_FFT as f64;
        if f < opts.fmin || f > opts.fmax {
            continue;
        }
        let pitch = 69.0 + 12.0 * (f / 440.0).log2();
        let nearest = pitch.round();
        let weight = 1.0 - 2.0 * (pitch - nearest).abs();
        if weight > 0.0 {
            map.push((k, (nearest as i64).rem_euclid(12) as usize, weight));
        }
    }
    let stft = Stft::<f32>::new(StftConfig::new(N_FFT, HOP))?;
    let frames = stft.config().n_frames(audio.len());
    // Magnitudes relative to a full-scale sine: the Hann window's sum is N_FFT / 2.
    let peak = audio.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let scale = 2.0 / (N_FFT as f64 / 2.0) / peak.max(1e-12);
    let mut per_frame = vec![0.0f64; frames * 12];
    let compression = opts.compression;
    stft.for_each_frame(
        audio,
        &mut per_frame,
        12,
        || (),
        |_, bins, out| {
            for &(k, pc, w) in &map {
                let mag = bins[k].norm() as f64 * scale;
                let v = match compression {
                    ChromaCompression::Energy => mag * mag,
                    ChromaCompression::Magnitude => mag,
                    ChromaCompression::Log => (100.0 * mag).ln_1p(),
                };
                out[pc] += w * v;
            }
        },
    );
    let mut total = [0.0f64; 12];
    for frame in per_frame.chunks_exact(12) {
        let max = frame.iter().fold(0.0f64, |m, &v| m.max(v));
        let div = if opts.normalise_frames { max } else { 1.0 };
        if max > 0.0 {
            for (t, v) in total.iter_mut().zip(frame) {
                *t += v / div;
            }
        }
    }
    Ok(total)
}

/// Pearson correlation of two 12-vectors; 0 when either is constant.
fn pearson(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let ma = a.iter().sum::<f64>() / 12.0;
    let mb = b.iter().sum::<f64>() / 12.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Correlation of `chroma` with every key's profile, in [`Key::all`]'s order.
pub fn key_correlations(chroma: &[f64; 12], profiles: KeyProfiles) -> Vec<(Key, f64)> {
    let (major, minor) = profiles.profiles();
    Key::all()
        .map(|key| {
            let profile = match key.mode {
                Mode::Major => &major,
                Mode::Minor => &minor,
            };
            // The profile for tonic t weights pitch class p by profile[(p - t) mod 12].
            let rotated: [f64; 12] =
                std::array::from_fn(|p| profile[(p + 12 - key.tonic as usize) % 12]);
            (key, pearson(chroma, &rotated))
        })
        .collect()
}

/// The best key for a summed chroma.
pub fn key_from_chroma(chroma: &[f64; 12], profiles: KeyProfiles) -> Result<KeyEstimate> {
    let max = chroma.iter().fold(0.0f64, |m, &v| m.max(v));
    let min = chroma.iter().fold(f64::INFINITY, |m, &v| m.min(v));
    if !(max > 0.0 && max - min > 1e-9 * max) {
        return Err(DspError::NotAnalysable {
            what: "key",
            reason: "the clip has no pitched content between the chroma limits".into(),
        });
    }
    let (key, correlation) = key_correlations(chroma, profiles)
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("24 keys");
    Ok(KeyEstimate { key, correlation })
}

/// Estimates the key of mono `audio` at `sample_rate` with the default options.
pub fn estimate_key(audio: &[f32], sample_rate: u32) -> Result<KeyEstimate> {
    estimate_key_with(audio, sample_rate, &KeyOptions::default())
}

/// [`estimate_key`] with explicit settings.
pub fn estimate_key_with(
    audio: &[f32],
    sample_rate: u32,
    opts: &KeyOptions,
) -> Result<KeyEstimate> {
    let audio = prepare(audio, sample_rate, "key", MIN_KEY_SECONDS)?;
    key_from_chroma(&chroma(&audio, opts)?, opts.profiles)
}

/// MIREX weighted key score of `estimate` against `truth`: 1 same key; 0.5 estimate a perfect
/// fifth above the truth in the same mode; 0.3 relative major/minor; 0.2 parallel
/// major/minor; 0 otherwise.
pub fn mirex_key_score(estimate: Key, truth: Key) -> f64 {
    let interval = (estimate.tonic as i32 - truth.tonic as i32).rem_euclid(12);
    match (estimate.mode == truth.mode, interval) {
        (true, 0) => 1.0,
        (true, 7) => 0.5,
        (false, _) if estimate == truth.relative() => 0.3,
        (false, 0) => 0.2,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SR: u32 = 22050;

    /// A harmonic tone (8 partials at 1/h amplitude) of MIDI pitch `midi`.
    fn tone(out: &mut [f32], start: usize, len: usize, midi: i32, gain: f32) {
        let f0 = 440.0 * 2f32.powf((midi - 69) as f32 / 12.0);
        for (i, v) in out[start..start + len].iter_mut().enumerate() {
            let t = i as f32 / SR as f32;
            let env = (-(t) * 1.5).exp() * (1.0 - (-(t) * 200.0).exp());
            let s: f32 = (1..=8)
                .filter(|&h| f0 * (h as f32) < SR as f32 / 2.0)
                .map(|h| (std::f32::consts::TAU * f0 * h as f32 * t).sin() / h as f32)
                .sum();
            *v += gain * env * s;
        }
    }

    /// A cadence in `key` (I-IV-V-I or i-iv-V-i with the harmonic minor's leading tone),
    /// block chords in close position over a bass, plus a scale melody; one second a chord.
    fn cadence(key: Key) -> Vec<f32> {
        let root = 48 + key.tonic as i32;
        let third = if key.mode == Mode::Major { 4 } else { 3 };
        let sixth = if key.mode == Mode::Major { 9 } else { 8 };
        // Chords as semitones above the tonic.
        let chords: [[i32; 3]; 4] = [[0, third, 7], [5, sixth, 12], [7, 11, 14], [0, third, 7]];
        let scale: [i32; 8] = if key.mode == Mode::Major {
            [0, 2, 4, 5, 7, 9, 11, 12]
        } else {
            [0, 2, 3, 5, 7, 8, 11, 12]
        };
        let len = SR as usize;
        let mut out = vec![0.0f32; 4 * len];
        for (c, chord) in chords.iter().enumerate() {
            tone(&mut out, c * len, len, root - 12 + chord[0], 0.2);
            for &n in chord {
                tone(&mut out, c * len, len, root + 12 + n, 0.1);
            }
            for half in 0..2 {
                let note = scale[(2 * c + half) % 8];
                tone(
                    &mut out,
                    c * len + half * len / 2,
                    len / 2,
                    root + 24 + note,
                    0.08,
                );
            }
        }
        out
    }

    #[test]
    fn cadences_in_all_keys() {
        let mut exact = 0;
        for key in Key::all() {
            let est = estimate_key(&cadence(key), SR).unwrap();
            assert!(
                mirex_key_score(est.key, key) >= 0.3,
                "{key} estimated as {}",
                est.key
            );
            assert!((-1.0..=1.0).contains(&est.correlation));
            exact += (est.key == key) as usize;
        }
        assert!(exact >= 22, "{exact}/24 exact");
    }

    #[test]
    fn other_sample_rates() {
        let key = Key::parse("E flat minor").unwrap();
        let audio = crate::audio::resample(&cadence(key), SR, 44100).unwrap();
        assert_eq!(estimate_key(&audio, 44100).unwrap().key, key);
    }

    #[test]
    fn parse_spellings() {
        let k = |t, m| Some(Key::new(t, m));
        use Mode::*;
        for (s, want) in [
            ("A minor", k(9, Minor)),
            ("F# major", k(6, Major)),
            ("Bb major", k(10, Major)),
            ("A min", k(9, Minor)),
            ("Am", k(9, Minor)),
            ("e minor", k(4, Minor)),
            ("C", k(0, Major)),
            ("CM", k(0, Major)),
            ("F sharp minor", k(6, Minor)),
            ("B flat major", k(10, Major)),
            ("D flat major", k(1, Major)),
            ("E♭ minor", k(3, Minor)),
            ("Cb major", k(11, Major)),
            ("B# minor", k(0, Minor)),
            ("bb minor", k(10, Minor)),
            ("b minor", k(11, Minor)),
            ("Gbm", k(6, Minor)),
            (" G major ", k(7, Major)),
            ("A dorian", k(9, Minor)),
            ("Ador", k(9, Minor)),
            ("D mixolydian", k(2, Major)),
            ("Dmix", k(2, Major)),
            ("E phrygian", k(4, Minor)),
            ("F lydian", k(5, Major)),
            ("B locrian", k(11, Minor)),
            ("A aeolian", k(9, Minor)),
            ("G ionian", k(7, Major)),
            ("", None),
            ("H minor", None),
            ("A minr", None),
            ("none", None),
            ("A sharpish major", None),
        ] {
            assert_eq!(Key::parse(s), want, "{s:?}");
        }
    }

    #[test]
    fn mirex_scores() {
        let p = |s| Key::parse(s).unwrap();
        assert_eq!(mirex_key_score(p("C major"), p("C major")), 1.0);
        assert_eq!(mirex_key_score(p("G major"), p("C major")), 0.5);
        assert_eq!(mirex_key_score(p("F major"), p("C major")), 0.0);
        assert_eq!(mirex_key_score(p("E minor"), p("A minor")), 0.5);
        assert_eq!(mirex_key_score(p("A minor"), p("C major")), 0.3);
        assert_eq!(mirex_key_score(p("C major"), p("A minor")), 0.3);
        assert_eq!(mirex_key_score(p("C minor"), p("C major")), 0.2);
        assert_eq!(mirex_key_score(p("A major"), p("A minor")), 0.2);
        assert_eq!(mirex_key_score(p("E minor"), p("C major")), 0.0);
        assert_eq!(mirex_key_score(p("C# major"), p("C major")), 0.0);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for e in [
            estimate_key(&[], SR).unwrap_err(),
            estimate_key(&vec![0.0; 5 * SR as usize], SR).unwrap_err(),
            estimate_key(&[f32::INFINITY; 50_000], SR).unwrap_err(),
            estimate_key(&[0.3; 50_000], 0).unwrap_err(),
        ] {
            assert!(e.is_bad_input(), "{e}");
        }
        let e = estimate_key(&vec![0.0; 5 * SR as usize], SR).unwrap_err();
        assert!(
            e.to_string().contains("key") && e.to_string().contains("silent"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(tonic in 0u8..12, minor: bool) {
            let key = Key::new(tonic, if minor { Mode::Minor } else { Mode::Major });
            prop_assert_eq!(Key::parse(&key.to_string()), Some(key));
            prop_assert_eq!(mirex_key_score(key, key), 1.0);
            prop_assert_eq!(key.relative().relative(), key);
        }
    }
}
