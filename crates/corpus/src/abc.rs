//! Captioned folk tunes from the ABC files of the music21 corpus (Essen Folksong Collection,
//! O'Neill's Music of Ireland (1850), Ryan's Mammoth Collection (1883), Aird's Airs, the
//! Nottingham Music Database), rendered to MIDI by abc2midi (abcMIDI, Debian `abcmidi`).
//! Metadata comes from the ABC header fields (ABC standard v2.1): `T:` title, `C:` composer,
//! `O:` origin, `R:` rhythm, `M:` meter, `K:` key, `Q:` tempo.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CorpusError, Result};
use musicdiff_common::rng::Rng;

/// One tune of an ABC file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tune {
    /// Corpus sub-directory, e.g. `oneills1850`.
    pub collection: String,
    /// File path relative to the corpus root.
    pub file: String,
    /// The tune's `X:` number.
    pub number: u32,
    pub title: String,
    pub composer: Option<String>,
    pub origin: Option<String>,
    pub rhythm: Option<String>,
    /// Meter as a fraction, `C` and `C|` spelled out.
    pub meter: Option<String>,
    /// Key in words, e.g. "A minor", "D mixolydian".
    pub key: Option<String>,
    /// The `Q:` field as written, if any.
    pub tempo: Option<String>,
    /// The tune's full ABC text (header and body).
    pub text: String,
}

/// Collections used, with the caption artist for each.
const COLLECTIONS: &[(&str, &str)] = &[
    ("oneills1850", "O'Neill's Music of Ireland (1850)"),
    ("ryansMammoth", "Ryan's Mammoth Collection (1883)"),
    ("essenFolksong", "Essen Folksong Collection"),
    (
        "airdsAirs",
        "Aird's Selection of Scotch, English, Irish and Foreign Airs",
    ),
    ("nottingham-dataset", "Nottingham Music Database"),
    ("miscFolk", "traditional"),
];

/// Score files of other formats in the corpus, which need a converter we do not ship.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    pub musicxml: usize,
    pub kern: usize,
    pub other: usize,
}

/// Words for the ABC key field: `Am` -> "A minor", `Dmix` -> "D mixolydian", `G` -> "G major".
pub fn key_words(field: &str) -> Option<String> {
    let tok = field.split_whitespace().next()?;
    let mut chars = tok.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    if !('A'..='G').contains(&letter) {
        return None;
    }
    let rest: String = chars.collect();
    let (acc, mode) = if let Some(m) = rest.strip_prefix('#') {
        (" sharp", m)
    } else if let Some(m) = rest.strip_prefix('b') {
        (" flat", m)
    } else {
        ("", rest.as_str())
    };
    let mode = mode.to_ascii_lowercase();
    let mode = match mode.get(..3).unwrap_or(&mode) {
        "" | "maj" | "ion" => "major",
        "m" | "min" | "aeo" => "minor",
        "mix" => "mixolydian",
        "dor" => "dorian",
        "phr" => "phrygian",
        "lyd" => "lydian",
        "loc" => "locrian",
        m if m.starts_with('m') => "minor",
        _ => return None,
    };
    Some(format!("{letter}{acc} {mode}"))
}

fn meter_words(field: &str) -> Option<String> {
    match field.trim() {
        "C" => Some("4/4".into()),
        "C|" => Some("2/2".into()),
        m if m.contains('/') => Some(m.split_whitespace().next()?.to_string()),
        _ => None,
    }
}

/// Splits one ABC file into its tunes.
pub fn parse_file(collection: &str, file: &str, text: &str) -> Vec<Tune> {
    let mut tunes = Vec::new();
    let mut current: Option<(u32, Vec<&str>)> = None;
    let flush = |cur: Option<(u32, Vec<&str>)>, tunes: &mut Vec<Tune>| {
        if let Some((number, lines)) = cur
            && let Some(t) = tune_from_lines(collection, file, number, &lines)
        {
            tunes.push(t);
        }
    };
    for line in text.lines() {
        if let Some(x) = line.strip_prefix("X:") {
            flush(current.take(), &mut tunes);
            current = Some((x.trim().parse().unwrap_or(0), vec![line]));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(current, &mut tunes);
    tunes
}

fn tune_from_lines(collection: &str, file: &str, number: u32, lines: &[&str]) -> Option<Tune> {
    let field = |tag: &str| {
        lines
            .iter()
            .find_map(|l| {
                l.strip_prefix(tag)
                    .map(|v| v.trim().trim_end_matches(']').to_string())
            })
            .filter(|v| !v.is_empty())
    };
    let key_line = lines.iter().position(|l| l.starts_with("K:"))?;
    // A tune needs a body after its key line.
    if !lines[key_line + 1..]
        .iter()
        .any(|l| !l.trim().is_empty() && !l.starts_with('%'))
    {
        return None;
    }
    Some(Tune {
        collection: collection.to_string(),
        file: file.to_string(),
        number,
        title: field("T:").unwrap_or_else(|| format!("tune {number}")),
        composer: field("C:"),
        origin: field("O:"),
        rhythm: field("R:").map(|r| r.to_lowercase()),
        meter: field("M:").and_then(|m| meter_words(&m)),
        key: field("K:").and_then(|k| key_words(&k)),
        tempo: field("Q:"),
        text: lines.join("\n"),
    })
}

/// Every tune of the used collections, sorted by file and number, and counts of the score
/// files that are not ABC.
pub fn load_tunes(corpus: &Path) -> Result<(Vec<Tune>, Skipped)> {
    let mut tunes = Vec::new();
    let mut skipped = Skipped::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for path in musicdiff_common::walk::files(corpus)? {
        match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "abc" => files.push(path),
            "mxl" | "xml" | "musicxml" => skipped.musicxml += 1,
            "krn" => skipped.kern += 1,
            "py" | "gz" | "png" | "psd" | "txt" => {}
            _ => skipped.other += 1,
        }
    }
    for path in files {
        let rel = path.strip_prefix(corpus).unwrap_or(&path);
        let collection = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if !COLLECTIONS.iter().any(|(c, _)| *c == collection) {
            skipped.other += 1;
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| CorpusError::io(&path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        tunes.extend(parse_file(&collection, &rel.to_string_lossy(), &text));
    }
    Ok((tunes, skipped))
}

impl Tune {
    /// Caption genre: collection, origin and rhythm in words.
    pub fn genre(&self) -> String {
        let rhythm = self
            .rhythm
            .as_deref()
            .map(|r| r.replace("slipjig", "slip jig"));
        match self.collection.as_str() {
            "oneills1850" => format!(
                "Irish {}",
                rhythm.unwrap_or_else(|| "traditional tune".into())
            ),
            "ryansMammoth" => match rhythm {
                Some(r) => format!("{r} fiddle tune"),
                None => "fiddle tune".into(),
            },
            "airdsAirs" => "Scottish air".into(),
            "nottingham-dataset" => format!(
                "English folk {}",
                rhythm.unwrap_or_else(|| "dance tune".into())
            ),
            "essenFolksong" => {
                let o = self.origin.as_deref().unwrap_or("");
                let people = [
                    ("China", "Chinese"),
                    ("Luxemburg", "Luxembourgish"),
                    ("Lothringen", "Lorraine"),
                    ("Jugoslawien", "Yugoslav"),
                    ("Niederlande", "Dutch"),
                    ("Schweiz", "Swiss"),
                    ("Oesterreich", "Austrian"),
                    ("Deutschland", "German"),
                ]
                .iter()
                .find(|(k, _)| o.contains(k))
                .map_or("European", |(_, v)| v);
                format!("{people} folk song")
            }
            _ => "folk tune".into(),
        }
    }

    /// Caption artist: the composer if known, else the collection.
    pub fn artist(&self) -> String {
        self.composer.clone().unwrap_or_else(|| {
            COLLECTIONS
                .iter()
                .find(|(c, _)| *c == self.collection)
                .map_or("traditional", |(_, a)| a)
                .to_string()
        })
    }

    /// A stable identifier for the split and clip names.
    pub fn key_id(&self) -> String {
        format!("{}#{}", self.file, self.number)
    }

    /// The tune prepared for abc2midi: numbered 1, a tempo added if it has none (drawn from a
    /// range that suits its rhythm), and the melody instrument set to GM `program`. Also
    /// returns the tempo in the tune's own beats per minute (dotted quarters for a jig), as a
    /// musician would state it, when known.
    pub fn to_abc(&self, program: u8, rng: &mut Rng) -> (String, Option<f64>) {
        let mut bpm = self.tempo.as_deref().and_then(beat_tempo);
        let mut out = Vec::new();
        let mut in_header = true;
        for line in self.text.lines() {
            if line.starts_with("X:") {
                out.push("X:1".to_string());
                continue;
            }
            if in_header && line.starts_with("K:") {
                if self.tempo.is_none() {
                    let (lo, hi) = match self.rhythm.as_deref() {
                        Some(r) if r.contains("reel") => (100, 120),
                        Some(r) if r.contains("jig") => (100, 120),
                        Some(r) if r.contains("hornpipe") || r.contains("strathspey") => (80, 100),
                        Some(r) if r.contains("air") || r.contains("lament") => (60, 80),
                        Some(r) if r.contains("waltz") => (100, 140),
                        _ => (80, 120),
                    };
                    let beat = match self.meter.as_deref() {
                        Some("6/8") | Some("9/8") | Some("12/8") => "3/8",
                        Some("2/2") => "1/2",
                        _ => "1/4",
                    };
                    let q = rng.range(lo, hi + 1);
                    bpm = Some(q as f64);
                    out.push(format!("Q:{beat}={q}"));
                }
                out.push(line.to_string());
                out.push(format!("%%MIDI program {program}"));
                in_header = false;
                continue;
            }
            out.push(line.to_string());
        }
        (out.join("\n") + "\n", bpm)
    }
}

/// Beats per minute from a `Q:` field such as `1/4=120`, `3/8=100` or `"Allegro" 1/4=132`;
/// `None` for the old unit-less form, whose beat depends on `L:`.
fn beat_tempo(q: &str) -> Option<f64> {
    let (_, value) = q.rsplit_once('=')?;
    let n: f64 = value
        .trim()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()?
        .parse()
        .ok()?;
    (n > 0.0 && n < 1000.0).then_some(n)
}

/// Melody instruments for folk tunes (GM programs).
pub const MELODY_PROGRAMS: &[u8] = &[0, 21, 22, 24, 25, 40, 46, 68, 71, 73, 74, 78, 105, 110];

/// Runs abc2midi on prepared ABC text in `work_dir`; returns the MIDI bytes.
pub fn abc_to_midi(abc2midi: &Path, abc: &str, work_dir: &Path, id: &str) -> Result<Vec<u8>> {
    let src = work_dir.join(format!("{id}.abc"));
    let mid = work_dir.join(format!("{id}.mid"));
    std::fs::write(&src, abc).map_err(|e| CorpusError::io(&src, e))?;
    let out = Command::new(abc2midi)
        .arg(&src)
        .arg("1")
        .arg("-o")
        .arg(&mid)
        .current_dir(work_dir)
        .output()
        .map_err(|e| CorpusError::Tool {
            tool: "abc2midi",
            input: id.to_string(),
            detail: e.to_string(),
        })?;
    match std::fs::read(&mid) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(CorpusError::Tool {
            tool: "abc2midi",
            input: id.to_string(),
            detail: String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .filter(|l| l.contains("Error"))
                .take(3)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
X:1
T:The Kesh
R:jig
M:6/8
L:1/8
K:G
GAG GAB|ABA ABd|edd gdd|edB dBA|

X:2
T:Empty
K:D

X:7
T:Mountain air
C:Anonymous
M:C
K:Ador
A2 B2 c2 d2|e8|
";

    #[test]
    fn parses_tunes_and_skips_empty_ones() {
        let t = parse_file("oneills1850", "oneills1850/x.abc", FILE);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].title, "The Kesh");
        assert_eq!(t[0].rhythm.as_deref(), Some("jig"));
        assert_eq!(t[0].meter.as_deref(), Some("6/8"));
        assert_eq!(t[0].key.as_deref(), Some("G major"));
        assert_eq!(t[0].genre(), "Irish jig");
        assert_eq!(t[1].number, 7);
        assert_eq!(t[1].meter.as_deref(), Some("4/4"));
        assert_eq!(t[1].key.as_deref(), Some("A dorian"));
        assert_eq!(t[1].artist(), "Anonymous");
        assert_eq!(t[0].artist(), "O'Neill's Music of Ireland (1850)");
    }

    #[test]
    fn keys_in_words() {
        assert_eq!(key_words("Am").as_deref(), Some("A minor"));
        assert_eq!(key_words("F#m").as_deref(), Some("F sharp minor"));
        assert_eq!(key_words("Bb").as_deref(), Some("B flat major"));
        assert_eq!(key_words("Dmix").as_deref(), Some("D mixolydian"));
        assert_eq!(key_words("none"), None);
    }

    #[test]
    fn prepared_abc_has_tempo_and_instrument() {
        let t = &parse_file("oneills1850", "x.abc", FILE)[0];
        let (abc, returned) = t.to_abc(110, &mut Rng::for_item(1, 2));
        assert!(abc.starts_with("X:1\n"));
        let q = abc
            .lines()
            .find(|l| l.starts_with("Q:3/8="))
            .expect("tempo added");
        let bpm: u64 = q[6..].parse().unwrap();
        assert_eq!(super::beat_tempo(&q[2..]), Some(bpm as f64));
        assert_eq!(returned, Some(bpm as f64));
        assert!((100..=120).contains(&bpm));
        assert!(abc.contains("K:G\n%%MIDI program 110\n"));
        assert_eq!(beat_tempo("\"Allegro\" 1/4=132"), Some(132.0));
        assert_eq!(beat_tempo("120"), None);
    }
}
