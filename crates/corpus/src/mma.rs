//! Captioned accompaniment from MMA, Musical MIDI Accompaniment (Bob van der Poel et al.,
//! Debian package `mma`): its standard library of grooves, each with a one-line English
//! description, is played over a random chord progression in a random key and tempo, and MMA
//! writes the MIDI file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CorpusError, Result};
use musicdiff_common::rng::Rng;

/// One groove of the MMA standard library.
#[derive(Debug, Clone, PartialEq)]
pub struct Groove {
    /// Style file stem, e.g. `bossanova`.
    pub style: String,
    /// Groove name, e.g. `BossaNova1Sus`.
    pub name: String,
    /// The groove's description from its `DefGroove` line.
    pub description: String,
    /// Beats per bar (`Time` in the style file).
    pub beats: u32,
    /// The style file's `Author`.
    pub author: Option<String>,
    /// Genre words for captions, e.g. "bossa nova".
    pub genre: &'static str,
    /// Tempo range in beats per minute that suits the style.
    pub bpm: (u32, u32),
}

/// Genre phrase and a suitable tempo range for each style file of MMA's standard library.
/// Styles not listed here (metronomes, the empty style) are not used.
const STYLES: &[(&str, &str, u32, u32)] = &[
    ("50srock", "1950s rock and roll", 140, 180),
    ("60srock", "1960s rock", 110, 150),
    ("68march", "march in 6/8", 100, 120),
    ("68swing", "swing in 6/8", 80, 120),
    ("8beat", "eight-beat pop", 90, 130),
    ("afro-cuban", "Afro-Cuban", 90, 130),
    ("arpeggio44", "arpeggiated accompaniment", 70, 110),
    ("arpeggio68", "arpeggiated accompaniment in 6/8", 60, 90),
    ("arpeggiowaltz", "arpeggiated waltz", 90, 140),
    ("ballad", "ballad", 60, 85),
    ("ballad128", "ballad in 12/8", 50, 75),
    ("ballad68", "ballad in 6/8", 50, 75),
    ("basicrock", "rock", 100, 140),
    ("bebop", "bebop jazz", 180, 260),
    ("beguine", "beguine", 100, 130),
    ("bigband", "big band swing", 120, 180),
    ("bluefolk", "blues folk", 80, 120),
    ("bluegrass", "bluegrass", 120, 180),
    ("blues", "blues", 80, 120),
    ("blues128", "blues in 12/8", 50, 80),
    ("blues68", "blues in 6/8", 50, 80),
    ("boggiewoggie", "boogie-woogie", 140, 180),
    ("bolero", "bolero", 90, 120),
    ("boneym", "disco pop", 110, 130),
    ("bossanova", "bossa nova", 110, 140),
    ("broadway", "Broadway show tune", 100, 140),
    ("broadwaywaltz", "Broadway waltz", 100, 150),
    ("bubblerock", "bubblegum pop", 110, 140),
    ("bvfunk", "funk", 90, 120),
    ("bwmarch", "Broadway march", 100, 120),
    ("calypso", "calypso", 100, 130),
    ("chacha", "cha-cha", 110, 130),
    ("charleston", "Charleston", 180, 240),
    ("countryblues", "country blues", 80, 120),
    ("countryswing", "country swing", 120, 170),
    ("countrywaltz", "country waltz", 90, 140),
    ("cubanguitar", "Cuban guitar", 90, 120),
    ("descendingjazz", "jazz", 100, 160),
    ("desert", "desert-style world music", 80, 120),
    ("dixie", "Dixieland jazz", 160, 220),
    ("dixiemarch", "Dixieland march", 100, 120),
    ("dsoul", "soul", 80, 110),
    ("easyswing", "easy swing", 100, 140),
    ("evansish", "jazz piano in the style of Bill Evans", 70, 120),
    ("fastblues", "fast blues", 130, 180),
    ("fastjazzwaltz", "fast jazz waltz", 180, 240),
    ("fastswing", "fast swing", 180, 260),
    ("fastwaltz", "fast waltz", 160, 200),
    ("folk", "folk", 90, 130),
    ("folkballad", "folk ballad", 60, 90),
    ("folkrock", "folk rock", 100, 140),
    ("folkyjazz", "folky jazz", 90, 130),
    ("foxtrot", "foxtrot", 110, 140),
    ("frenchwaltz", "French musette waltz", 130, 180),
    ("guitarballad", "guitar ballad", 60, 90),
    ("gypsyjazz", "gypsy jazz", 160, 230),
    ("hillcountry", "hill country blues", 90, 130),
    ("hymn", "hymn", 60, 90),
    ("jazz-54", "jazz in 5/4", 120, 180),
    ("jazzcombo", "small combo jazz", 120, 180),
    ("jazzguitar", "jazz guitar", 100, 160),
    ("jazzrhumba", "jazz rhumba", 100, 130),
    ("jazzrock", "jazz rock", 100, 140),
    ("jazzwaltz", "jazz waltz", 120, 180),
    ("jive", "jive", 150, 180),
    ("latinwaltz", "Latin waltz", 100, 150),
    ("lfusion", "Latin fusion", 100, 130),
    ("lighttango", "light tango", 110, 130),
    ("lullaby", "lullaby", 55, 80),
    ("mambo", "mambo", 170, 210),
    ("march", "march", 100, 124),
    ("mellowjazz", "mellow jazz", 80, 120),
    ("merengue", "merengue", 120, 160),
    ("modernjazz", "modern jazz", 120, 200),
    ("modernjazzwaltz", "modern jazz waltz", 120, 180),
    ("nitejazz", "late-night jazz", 70, 110),
    ("pianoballad", "piano ballad", 60, 85),
    ("polka", "polka", 100, 130),
    ("popballad", "pop ballad", 60, 90),
    ("popspiritual", "pop spiritual", 70, 100),
    ("quickstep", "quickstep", 190, 210),
    ("ragtime", "ragtime", 90, 120),
    ("rb", "rhythm and blues", 90, 130),
    ("rb-ballad", "rhythm and blues ballad", 60, 85),
    ("rhumba", "rhumba", 100, 130),
    ("rock-128", "rock in 12/8", 60, 90),
    ("rockballad", "rock ballad", 60, 90),
    ("rockwaltz", "rock waltz", 100, 150),
    ("salsa", "salsa", 160, 200),
    ("samba", "samba", 90, 110),
    ("showtune", "show tune", 100, 140),
    ("shuffleboggie", "shuffle boogie", 120, 160),
    ("ska", "ska", 140, 180),
    ("slowblues", "slow blues", 50, 75),
    ("slowbolero", "slow bolero", 70, 95),
    ("slowbroadway", "slow Broadway ballad", 60, 85),
    ("slowcountry", "slow country", 60, 85),
    ("slowjazz", "slow jazz", 60, 85),
    ("slowspiritual", "slow spiritual", 50, 75),
    ("softrock", "soft rock", 80, 110),
    ("softshoe", "soft shoe", 100, 130),
    ("son", "Cuban son", 90, 120),
    ("spiritual", "spiritual", 80, 110),
    ("stringballad", "string ballad", 60, 85),
    ("strut", "strut", 90, 120),
    ("swing", "swing", 120, 170),
    ("tango", "tango", 110, 130),
    ("trance", "trance", 130, 145),
    ("twist", "twist", 140, 170),
    ("vienesewaltz", "Viennese waltz", 160, 190),
    ("waltz", "waltz", 84, 120),
    ("westernswing", "western swing", 130, 180),
    ("zydeco", "zydeco", 120, 160),
];

fn style_info(stem: &str) -> Option<(&'static str, u32, u32)> {
    STYLES
        .iter()
        .find(|(s, ..)| *s == stem)
        .map(|&(_, g, lo, hi)| (g, lo, hi))
}

/// Intros, endings and fills are for the edges of songs, not for whole clips.
fn is_section_variant(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    ["Intro", "End", "Fill", "Break"]
        .iter()
        .any(|suffix| base.ends_with(suffix))
}

/// Parses the `DefGroove` lines (with `\` continuations) of one style file.
pub fn parse_style(stem: &str, text: &str) -> Vec<Groove> {
    let Some((genre, lo, hi)) = style_info(stem) else {
        return Vec::new();
    };
    let mut grooves = Vec::new();
    let mut beats = 4;
    let mut author = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.split("//").next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Time") => {
                if let Some(n) = words.next().and_then(|w| w.parse().ok()) {
                    beats = n;
                }
            }
            Some("Author") => author = Some(words.collect::<Vec<_>>().join(" ")),
            Some("DefGroove") => {
                let Some(name) = words.next() else { continue };
                let mut desc = words.collect::<Vec<_>>().join(" ");
                while desc.ends_with('\\') {
                    desc.pop();
                    let more = lines.next().unwrap_or("").trim();
                    desc = format!("{} {}", desc.trim_end(), more);
                }
                let desc = desc.split_whitespace().collect::<Vec<_>>().join(" ");
                if desc.is_empty() || is_section_variant(name) {
                    continue;
                }
                grooves.push(Groove {
                    style: stem.to_string(),
                    name: name.to_string(),
                    description: desc,
                    beats,
                    author: author.clone(),
                    genre,
                    bpm: (lo, hi),
                });
            }
            _ => {}
        }
    }
    grooves
}

/// All usable grooves of the standard library under MMA's home, sorted by style and name.
pub fn load_grooves(home: &Path) -> Result<Vec<Groove>> {
    let lib = home.join("lib/stdlib");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map_err(|e| CorpusError::io(&lib, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mma"))
        .collect();
    files.sort();
    let mut grooves = Vec::new();
    for f in files {
        let stem = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&f).map_err(|e| CorpusError::io(&f, e))?;
        grooves.extend(parse_style(&stem, &String::from_utf8_lossy(&bytes)));
    }
    Ok(grooves)
}

/// Chord progressions as scale degrees (semitones above the tonic, chord quality).
const MAJOR_PROGRESSIONS: &[&[(u8, &str)]] = &[
    &[(0, ""), (9, "m"), (5, ""), (7, "7")],
    &[(0, ""), (5, ""), (7, "7"), (0, "")],
    &[(2, "m7"), (7, "7"), (0, "M7"), (9, "m7")],
    &[(0, ""), (7, ""), (9, "m"), (5, "")],
    &[(0, "M7"), (4, "m7"), (5, "M7"), (7, "7")],
];
const MINOR_PROGRESSIONS: &[&[(u8, &str)]] = &[
    &[(0, "m"), (5, "m"), (7, "7"), (0, "m")],
    &[(0, "m"), (8, ""), (3, ""), (10, "")],
    &[(0, "m7"), (5, "m7"), (10, "7"), (3, "M7")],
    &[(2, "m7b5"), (7, "7"), (0, "m"), (0, "m")],
];
const NOTE_NAMES: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B",
];
const KEY_WORDS: [&str; 12] = [
    "C", "D flat", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B",
];

/// A concrete song to ask MMA for.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    pub groove: Groove,
    pub bpm: u32,
    /// Tonic pitch class 0..12 (C = 0).
    pub tonic: u8,
    pub minor: bool,
    pub bars: u32,
    /// One chord symbol per bar.
    pub chords: Vec<String>,
    /// Seed for MMA's own randomness (timing and velocity humanisation), so that the same
    /// song always gives the same MIDI.
    pub mma_seed: u32,
}

impl Song {
    /// Draws key, mode, tempo (within the style's range) and a progression long enough for
    /// about `seconds` of music.
    pub fn random(groove: &Groove, seconds: f64, rng: &mut Rng) -> Self {
        let bpm = rng.range(groove.bpm.0 as u64, groove.bpm.1 as u64 + 1) as u32;
        let tonic = rng.range(0, 12) as u8;
        let minor = rng.chance(0.4);
        let bar_s = groove.beats as f64 * 60.0 / bpm as f64;
        let bars = ((seconds / bar_s).round() as u32).max(2);
        let progs = if minor {
            MINOR_PROGRESSIONS
        } else {
            MAJOR_PROGRESSIONS
        };
        let prog = *rng.choose(progs);
        let chords = (0..bars as usize)
            .map(|i| {
                let (deg, quality) = prog[i % prog.len()];
                format!("{}{}", NOTE_NAMES[((tonic + deg) % 12) as usize], quality)
            })
            .collect();
        Self {
            groove: groove.clone(),
            bpm,
            tonic,
            minor,
            bars,
            chords,
            mma_seed: rng.range(0, 1 << 31) as u32,
        }
    }

    /// "A minor", "B flat major".
    pub fn key(&self) -> String {
        format!(
            "{} {}",
            KEY_WORDS[self.tonic as usize],
            if self.minor { "minor" } else { "major" }
        )
    }

    /// Length of the music in seconds.
    pub fn seconds(&self) -> f64 {
        self.bars as f64 * self.groove.beats as f64 * 60.0 / self.bpm as f64
    }

    /// The MMA source text.
    pub fn to_mma(&self) -> String {
        let mut s = format!(
            "RndSeed {}\nTempo {}\nGroove {}\n",
            self.mma_seed, self.bpm, self.groove.name
        );
        for (i, c) in self.chords.iter().enumerate() {
            s.push_str(&format!("{} {}\n", i + 1, c));
        }
        s
    }

    /// Runs MMA (`python3 mma.py`) on this song in `work_dir`; returns the MIDI bytes.
    pub fn render_midi(&self, mma_home: &Path, work_dir: &Path, id: &str) -> Result<Vec<u8>> {
        let src = work_dir.join(format!("{id}.mma"));
        let mid = work_dir.join(format!("{id}.mid"));
        std::fs::write(&src, self.to_mma()).map_err(|e| CorpusError::io(&src, e))?;
        let out = Command::new("python3")
            .arg(mma_home.join("mma.py"))
            .arg(&src)
            .arg("-f")
            .arg(&mid)
            .current_dir(work_dir)
            .output()
            .map_err(|e| CorpusError::Tool {
                tool: "mma",
                input: id.to_string(),
                detail: format!("cannot run python3: {e}"),
            })?;
        let bytes = std::fs::read(&mid).ok();
        let _ = std::fs::remove_file(&src);
        let _ = std::fs::remove_file(&mid);
        match bytes {
            Some(b) if out.status.success() => Ok(b),
            _ => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                // MMA's messages span lines; keep from the first "Error:" on, else the tail.
                let detail = match text.find("Error:") {
                    Some(at) => &text[at..],
                    None => text.trim(),
                };
                let detail: Vec<&str> = detail.split_whitespace().collect();
                Err(CorpusError::Tool {
                    tool: "mma",
                    input: format!("{id} (groove {})", self.groove.name),
                    detail: if detail.is_empty() {
                        format!("exit status {}", out.status)
                    } else {
                        detail.join(" ")
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STYLE: &str = "\
Begin Doc
  A test style.
End
Author Bob van der Poel
Time 4
DefGroove BossaNova   Standard bossanova beat.
DefGroove BossaNova3Sus  A combination of BossaNova1Sus and BossaNova2Sus. Alternating \\
    bars.
Time 3
DefGroove BossaNovaIntro   Dull introduction.
DefGroove BossaNovaWaltz  In three.   // a comment
";

    #[test]
    fn parses_grooves_with_continuations_and_skips_intros() {
        let g = parse_style("bossanova", STYLE);
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["BossaNova", "BossaNova3Sus", "BossaNovaWaltz"]);
        assert_eq!(
            g[1].description,
            "A combination of BossaNova1Sus and BossaNova2Sus. Alternating bars."
        );
        assert_eq!(g[2].beats, 3);
        assert_eq!(g[0].author.as_deref(), Some("Bob van der Poel"));
        assert_eq!(g[0].genre, "bossa nova");
        assert!(parse_style("metronome", STYLE).is_empty());
    }

    #[test]
    fn songs_fit_the_style_and_length() {
        let g = &parse_style("bossanova", STYLE)[0];
        let mut rng = Rng::for_item(3, 4);
        for _ in 0..50 {
            let s = Song::random(g, 12.0, &mut rng);
            assert!((110..=140).contains(&s.bpm));
            assert!((s.seconds() - 12.0).abs() <= s.seconds() / s.bars as f64);
            assert_eq!(s.chords.len(), s.bars as usize);
            let src = s.to_mma();
            assert!(src.starts_with(&format!("RndSeed {}\nTempo {}\n", s.mma_seed, s.bpm)));
            assert!(src.contains("Groove BossaNova\n1 "));
        }
    }
}
