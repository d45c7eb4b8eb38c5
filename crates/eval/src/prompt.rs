//! What a prompt states that the suite can check: its tempo in bpm, its key, and the words
//! that name one of the 50 MagnaTagATune tags musicnn predicts (Law et al., "Evaluation of
//! algorithms using games: the case of music tagging", ISMIR 2009). The tag vocabulary is the
//! evaluation's stand-in for a CLAP text tower: a prompt "names" a tag when one of the tag's
//! words appears in it as a whole word.

use musicdiff_dsp::key::Key;

/// Prompt words (lower case, whole words) and the MTT tag each one names. Only tags a caption
/// can plausibly state are listed: instruments, genres, tempo words, solo.
pub const TAG_WORDS: &[(&str, &str)] = &[
    ("guitar", "guitar"),
    ("guitars", "guitar"),
    ("classical", "classical"),
    ("slow", "slow"),
    ("techno", "techno"),
    ("strings", "strings"),
    ("string", "strings"),
    ("drums", "drums"),
    ("drum", "drums"),
    ("electronic", "electronic"),
    ("rock", "rock"),
    ("fast", "fast"),
    ("piano", "piano"),
    ("ambient", "ambient"),
    ("violin", "violin"),
    ("fiddle", "violin"),
    ("synth", "synth"),
    ("synthesizer", "synth"),
    ("indian", "indian"),
    ("opera", "opera"),
    ("harpsichord", "harpsichord"),
    ("flute", "flute"),
    ("pop", "pop"),
    ("sitar", "sitar"),
    ("solo", "solo"),
    ("choir", "choir"),
    ("dance", "dance"),
    ("harp", "harp"),
    ("cello", "cello"),
    ("country", "country"),
    ("metal", "metal"),
];

/// Lower-case words of `text` (letters and digits; everything else separates).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The distinct MTT tags (by name) that `prompt` names, in [`TAG_WORDS`] order.
pub fn named_tags(prompt: &str) -> Vec<&'static str> {
    let ws = words(prompt);
    let mut out: Vec<&'static str> = Vec::new();
    for &(word, tag) in TAG_WORDS {
        if ws.iter().any(|w| w == word) && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_named_by_whole_words_once_each() {
        assert_eq!(
            named_tags("Slow bossa nova on nylon guitar and guitars, with drums"),
            vec!["guitar", "slow", "drums"]
        );
        // "harpsichord" does not name "harp"; "pop" inside "popular" does not count.
        assert_eq!(
            named_tags("harpsichord solo, popular tune"),
            vec!["harpsichord", "solo"]
        );
        assert_eq!(named_tags("jig played on fiddle"), vec!["violin"]);
        assert!(named_tags("").is_empty());
    }

    #[test]
    fn every_tag_word_names_a_real_mtt_tag() {
        for &(_, tag) in TAG_WORDS {
            assert!(musicdiff_judge::MTT_TAGS.contains(&tag), "{tag}");
        }
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
}
