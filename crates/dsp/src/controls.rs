//! Musical controls: the tempo, key and meter a piece is in, as a prompt states them ("slow
//! bossa nova in A minor, 90 bpm", "a waltz in 3/4") or as a clip's metadata records them
//! (`bpm`, `key`, `time_signature`), and as the numbers and classes the model is conditioned
//! on. A sentence encoder barely separates "F major" from "G major" or 90 from 140 bpm; these
//! give the network each fact as an input of its own, the way Stable Audio gives it timing
//! (Evans et al. 2024) and Jukebox gives it genre and artist (Dhariwal et al. 2020).
//!
//! One owner for the reading of these facts: the data preparation reads metadata with it, the
//! generator reads prompts with it, and the evaluation suite scores a generation against what
//! the prompt states with it.

use serde::{Deserialize, Serialize};

use crate::key::{Key, Mode};

/// Tempi the controls represent; others are clamped into this range.
pub const BPM_RANGE: (f32, f32) = (30.0, 300.0);

/// Fourier octaves of the tempo features.
const BPM_OCTAVES: usize = 4;
/// `[u, sin(pi 2^k u), cos(pi 2^k u)]` of `u` = log-tempo scaled to [0, 1].
pub const BPM_FEATURES: usize = 1 + 2 * BPM_OCTAVES;

/// Key classes: 12 major tonics, then 12 minor.
pub const KEY_CLASSES: usize = 24;

/// The meters the controls tell apart; every other time signature is [`Meter::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Meter {
    #[serde(rename = "2/4")]
    TwoFour,
    #[serde(rename = "3/4")]
    ThreeFour,
    #[serde(rename = "4/4")]
    FourFour,
    #[serde(rename = "6/8")]
    SixEight,
    #[serde(rename = "2/2")]
    TwoTwo,
    #[serde(rename = "3/8")]
    ThreeEight,
    #[serde(rename = "6/4")]
    SixFour,
    #[serde(rename = "9/8")]
    NineEight,
    #[serde(rename = "other")]
    Other,
}

impl Meter {
    /// Every meter, in class order.
    pub const ALL: [Meter; 9] = [
        Meter::TwoFour,
        Meter::ThreeFour,
        Meter::FourFour,
        Meter::SixEight,
        Meter::TwoTwo,
        Meter::ThreeEight,
        Meter::SixFour,
        Meter::NineEight,
        Meter::Other,
    ];

    /// Its class index (an embedding row).
    pub fn class(self) -> usize {
        Self::ALL.iter().position(|&m| m == self).expect("listed")
    }

    /// Reads a time signature "N/M" (spaces allowed; "C" is 4/4 and "C|" is 2/2, as in ABC).
    /// A signature outside the list is `Other`; text that is not one is `None`.
    pub fn parse(s: &str) -> Option<Meter> {
        let s = s.trim();
        match s {
            "C" => return Some(Meter::FourFour),
            "C|" => return Some(Meter::TwoTwo),
            _ => {}
        }
        let (n, d) = s.split_once('/')?;
        let (n, d): (u32, u32) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
        if n == 0 || d == 0 {
            return None;
        }
        Some(match (n, d) {
            (2, 4) => Meter::TwoFour,
            (3, 4) => Meter::ThreeFour,
            (4, 4) => Meter::FourFour,
            (6, 8) => Meter::SixEight,
            (2, 2) => Meter::TwoTwo,
            (3, 8) => Meter::ThreeEight,
            (6, 4) => Meter::SixFour,
            (9, 8) => Meter::NineEight,
            _ => Meter::Other,
        })
    }

    /// Its name as written ("3/4", or "other").
    pub fn name(self) -> &'static str {
        match self {
            Meter::TwoFour => "2/4",
            Meter::ThreeFour => "3/4",
            Meter::FourFour => "4/4",
            Meter::SixEight => "6/8",
            Meter::TwoTwo => "2/2",
            Meter::ThreeEight => "3/8",
            Meter::SixFour => "6/4",
            Meter::NineEight => "9/8",
            Meter::Other => "other",
        }
    }
}

/// Number of meter classes.
pub const METER_CLASSES: usize = Meter::ALL.len();

/// The class index of a key: the tonic for major keys, 12 + the tonic for minor ones.
pub fn key_class(key: Key) -> usize {
    key.tonic as usize
        + match key.mode {
            Mode::Major => 0,
            Mode::Minor => 12,
        }
}

/// The tempo features of `bpm` (clamped to [`BPM_RANGE`]): its log-tempo `u` in [0, 1] and
/// `sin`/`cos` of `pi 2^k u`, so that nearby tempi get nearby features at several scales.
pub fn bpm_features(bpm: f32) -> [f32; BPM_FEATURES] {
    let (lo, hi) = BPM_RANGE;
    let u = ((bpm.clamp(lo, hi) / lo).ln() / (hi / lo).ln()) as f64;
    let mut f = [0.0f32; BPM_FEATURES];
    number_features(u, std::f64::consts::PI, &mut f);
    f
}

/// The features of a number `u` in [0, 1] as the conditioning embeds numbers (Stable Audio's
/// NumberConditioner, with Fourier features): `out = [u, sin(w 2^k u)..., cos(w 2^k u)...]` for
/// `k` below `(out.len() - 1) / 2`, `w` the base angular frequency. Tempo here and timing in the
/// model both use it.
pub fn number_features(u: f64, w: f64, out: &mut [f32]) {
    let octaves = (out.len() - 1) / 2;
    out[0] = u as f32;
    for k in 0..octaves {
        let a = w * (1u32 << k) as f64 * u;
        out[1 + k] = a.sin() as f32;
        out[1 + octaves + k] = a.cos() as f32;
    }
}

/// What is known of a piece's tempo, key and meter; each may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpm: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "key_name")]
    pub key: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<Meter>,
}

/// A key stored by its name ("A minor"), read back with [`Key::parse`].
mod key_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::key::Key;

    pub fn serialize<S: Serializer>(key: &Option<Key>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_str(&k.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Key>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => Key::parse(&name)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a key"))),
        }
    }
}

impl Controls {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.bpm.is_none() && self.key.is_none() && self.meter.is_none()
    }

    /// What a prompt states: the tempo before "bpm", a key as "A minor" / "F# major" / "E flat
    /// major", and a meter as "3/4" ("in 6/8", "3/4 time") or as a dance that fixes it
    /// ("waltz": 3/4; "jig": 6/8; "march": 2/4).
    pub fn from_prompt(prompt: &str) -> Controls {
        Controls {
            bpm: stated_bpm(prompt).map(|b| b as f32),
            key: stated_key(prompt),
            meter: stated_meter(prompt),
        }
    }

    /// `self` with the values of `over` where `over` has them (flags over the prompt).
    pub fn overridden_by(self, over: Controls) -> Controls {
        Controls {
            bpm: over.bpm.or(self.bpm),
            key: over.key.or(self.key),
            meter: over.meter.or(self.meter),
        }
    }

    /// One line: "90 bpm, A minor, 3/4" (the parts known), or "none".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.bpm {
            parts.push(format!("{b} bpm"));
        }
        if let Some(k) = self.key {
            parts.push(k.to_string());
        }
        if let Some(m) = self.meter {
            parts.push(m.name().to_string());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The tempo a prompt states: the number before "bpm" ("90 bpm", "90bpm", "90 BPM").
pub fn stated_bpm(prompt: &str) -> Option<f64> {
    let lower = prompt.to_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("bpm") {
        let at = from + i;
        let before = lower[..at].trim_end();
        let digits: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if let Ok(bpm) = digits.parse::<f64>()
            && bpm > 0.0
        {
            return Some(bpm);
        }
        from = at + 3;
    }
    None
}

/// The key a prompt states: a note name (A-G, with a sharp or flat as a sign or a word)
/// followed by "major" or "minor" ("A minor", "in F# major", "Bb minor", "E flat major",
/// "F sharp minor").
pub fn stated_key(prompt: &str) -> Option<Key> {
    let tokens: Vec<&str> = prompt
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '.' | '(' | ')'))
        .filter(|t| !t.is_empty())
        .collect();
    let is_note = |t: &str| {
        let mut chars = t.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| ('A'..='G').contains(&c.to_ascii_uppercase()));
        let rest: String = chars.collect();
        first_ok && matches!(rest.as_str(), "" | "#" | "b" | "♯" | "♭")
    };
    (0..tokens.len()).find_map(|i| {
        let note = *tokens.get(i)?;
        if !is_note(note) {
            return None;
        }
        // "E flat major": the accidental as a word between the note and the mode.
        let (accidental, mode_at) = match tokens.get(i + 1).map(|t| t.to_lowercase()) {
            Some(a) if a == "flat" || a == "sharp" => (format!(" {a}"), i + 2),
            _ => (String::new(), i + 1),
        };
        let mode = tokens.get(mode_at)?.to_lowercase();
        if mode != "major" && mode != "minor" {
            return None;
        }
        Key::parse(&format!("{note}{accidental} {mode}"))
    })
}

/// The meter a prompt states: a time signature written "N/M" as a word of its own, else a
/// dance whose meter is fixed ("waltz" 3/4, "jig" 6/8, "march" 2/4, "reel" 4/4).
pub fn stated_meter(prompt: &str) -> Option<Meter> {
    let words: Vec<String> = prompt
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')'))
        .map(|w| w.trim_end_matches('.').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(m) = words
        .iter()
        .filter(|w| w.contains('/'))
        .find_map(|w| Meter::parse(w))
    {
        return Some(m);
    }
    words.iter().find_map(|w| match w.as_str() {
        "waltz" | "waltzes" => Some(Meter::ThreeFour),
        "jig" | "jigs" => Some(Meter::SixEight),
        "march" | "marches" => Some(Meter::TwoFour),
        "reel" | "reels" => Some(Meter::FourFour),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_state_tempo_key_and_meter() {
        let c = Controls::from_prompt("slow bossa nova on nylon guitar, A minor, 90 bpm");
        assert_eq!(c.bpm, Some(90.0));
        assert_eq!(c.key, Some(Key::new(9, Mode::Minor)));
        assert_eq!(c.meter, None);
        assert_eq!(c.describe(), "90 bpm, A minor");
        let c = Controls::from_prompt("a waltz for strings in E flat major");
        assert_eq!(c.key, Some(Key::new(3, Mode::Major)));
        assert_eq!(c.meter, Some(Meter::ThreeFour));
        assert_eq!(c.bpm, None);
        assert_eq!(
            Controls::from_prompt("fast jig played on fiddle").meter,
            Some(Meter::SixEight)
        );
        // A written signature wins over a dance word; an unknown one is `Other`.
        assert_eq!(
            Controls::from_prompt("a jig in 9/8").meter,
            Some(Meter::NineEight)
        );
        assert_eq!(
            Controls::from_prompt("odd groove in 7/8.").meter,
            Some(Meter::Other)
        );
        assert!(Controls::from_prompt("ambient drones").is_empty());
        // "and/or" is not a time signature.
        assert_eq!(Controls::from_prompt("piano and/or strings").meter, None);
    }

    #[test]
    fn bpm_is_read_before_the_word_bpm() {
        assert_eq!(stated_bpm("bossa nova, A minor, 90 bpm"), Some(90.0));
        assert_eq!(stated_bpm("Reel (fast, 132 BPM)"), Some(132.0));
        assert_eq!(stated_bpm("at 100bpm"), Some(100.0));
        assert_eq!(stated_bpm("bpm unknown"), None);
        assert_eq!(stated_bpm("no tempo here"), None);
    }

    #[test]
    fn key_is_read_from_note_and_mode() {
        let a_minor = Key::parse("A minor").unwrap();
        assert_eq!(
            stated_key("slow bossa nova, A minor, 90 bpm"),
            Some(a_minor)
        );
        assert_eq!(stated_key("in F# major (4/4)"), Key::parse("F# major"));
        assert_eq!(stated_key("Bb minor"), Key::parse("Bb minor"));
        assert_eq!(
            stated_key("Organ in E flat major (pop, 99 bpm)"),
            Key::parse("Eb major")
        );
        assert_eq!(stated_key("reel, F sharp minor"), Key::parse("F# minor"));
        assert_ne!(stated_key("E flat major"), stated_key("E major"));
        assert_eq!(stated_key("a major triumph"), Key::parse("A major"));
        assert_eq!(stated_key("the minor details"), None);
        assert_eq!(stated_key("no key"), None);
    }

    #[test]
    fn meters_parse_from_metadata() {
        assert_eq!(Meter::parse("4/4"), Some(Meter::FourFour));
        assert_eq!(Meter::parse(" 6 / 8 "), Some(Meter::SixEight));
        assert_eq!(Meter::parse("5/4"), Some(Meter::Other));
        assert_eq!(Meter::parse("C|"), Some(Meter::TwoTwo));
        assert_eq!(Meter::parse("FREI4/4"), None);
        assert_eq!(Meter::parse("0/4"), None);
        for m in Meter::ALL {
            assert_eq!(Meter::ALL[m.class()], m);
            if m != Meter::Other {
                assert_eq!(Meter::parse(m.name()), Some(m));
            }
        }
    }

    #[test]
    fn classes_and_features_are_in_range() {
        let classes: std::collections::BTreeSet<usize> = Key::all().map(key_class).collect();
        assert_eq!(classes.len(), KEY_CLASSES);
        assert_eq!(*classes.iter().max().unwrap(), KEY_CLASSES - 1);
        let (slow, fast) = (bpm_features(30.0), bpm_features(300.0));
        assert_eq!(slow[0], 0.0);
        assert!((fast[0] - 1.0).abs() < 1e-6);
        assert_eq!(bpm_features(10.0), slow, "clamped");
        // Nearby tempi are nearer than distant ones.
        let d = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
        let (a, b, c) = (bpm_features(90.0), bpm_features(95.0), bpm_features(140.0));
        assert!(d(&a, &b) < d(&a, &c));
    }

    #[test]
    fn controls_round_trip_through_json() {
        let c = Controls {
            bpm: Some(96.0),
            key: Some(Key::new(10, Mode::Minor)),
            meter: Some(Meter::SixEight),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"6/8\""), "{json}");
        assert_eq!(serde_json::from_str::<Controls>(&json).unwrap(), c);
        assert_eq!(
            serde_json::from_str::<Controls>("{}").unwrap(),
            Controls::default()
        );
        assert!(serde_json::from_str::<Controls>("{\"key\": \"H major\"}").is_err());
    }
}
