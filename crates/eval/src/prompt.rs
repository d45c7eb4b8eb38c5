//! What a prompt states that the suite can check: its tempo in bpm, its key, and the words
//! that name one of the 50 MagnaTagATune tags musicnn predicts (Law et al., "Evaluation of
//! algorithms using games: the case of music tagging", ISMIR 2009). The tag vocabulary is the
//! evaluation's stand-in for a CLAP text tower: a prompt "names" a tag when one of the tag's
//! words appears in it as a whole word.

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

/// The tempo and key a prompt states (one reading for the generator and the suite).
pub use musicdiff_dsp::controls::{stated_bpm, stated_key};

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
}
