//! Captions from structured facts about a clip: genre, description, instruments (from the MIDI
//! itself), tempo (bpm and a word), key and mode, meter. Several phrasings per clip, so that
//! the text encoder sees varied language for the same music.

use musicdiff_common::rng::Rng;

/// The facts a caption may mention.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub genre: String,
    /// A free sentence from the source (an MMA groove description), if any.
    pub description: Option<String>,
    pub instruments: Vec<String>,
    pub bpm: f64,
    pub key: Option<String>,
    pub time_signature: Option<String>,
    /// Composer, collection or library author.
    pub artist: Option<String>,
}

/// slow / moderate / fast, by beats per minute.
pub fn tempo_word(bpm: f64) -> &'static str {
    if bpm < 80.0 {
        "slow"
    } else if bpm < 120.0 {
        "moderate"
    } else {
        "fast"
    }
}

/// "a, b and c" for up to `max` items.
fn list(items: &[String], max: usize) -> String {
    let items: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {}", init.join(", "), last),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Every phrasing of `facts`, each a complete caption.
pub fn phrasings(f: &Facts) -> Vec<String> {
    let bpm = f.bpm.round() as u32;
    // "fast fast waltz" reads badly: a genre that names its tempo keeps its own word.
    let tempo = if ["slow", "fast", "moderate"].iter().any(|w| {
        f.genre
            .split_whitespace()
            .any(|g| g.eq_ignore_ascii_case(w))
    }) {
        ""
    } else {
        tempo_word(f.bpm)
    };
    let instr = list(&f.instruments, 4);
    let key = f.key.clone().unwrap_or_default();
    let in_key = if key.is_empty() {
        String::new()
    } else {
        format!(" in {key}")
    };
    let meter = f
        .time_signature
        .as_ref()
        .map(|m| format!(", {m} time"))
        .unwrap_or_default();
    let with = if instr.is_empty() {
        String::new()
    } else {
        format!(" with {instr}")
    };
    let desc = f
        .description
        .as_ref()
        .map(|d| format!(" {}", d.trim_end_matches('.').to_owned() + "."))
        .unwrap_or_default();
    let by = f
        .artist
        .as_ref()
        .map(|a| format!(", after {a}"))
        .unwrap_or_default();
    let mut out = vec![
        format!(
            "{} {}{}, {} bpm{}.{}",
            capitalise(tempo),
            f.genre,
            in_key,
            bpm,
            with,
            desc
        ),
        format!(
            "{}{}{}, {} bpm{}",
            capitalise(&f.genre),
            with,
            in_key,
            bpm,
            meter
        ),
        format!(
            "{} {} piece at {} beats per minute{}{}",
            capitalise(match tempo {
                "moderate" => "a moderate",
                "" => "a",
                t => t,
            }),
            f.genre,
            bpm,
            in_key,
            by
        ),
    ];
    if !instr.is_empty() {
        out.push(format!(
            "{} playing {} {}{}",
            capitalise(&instr),
            tempo,
            f.genre,
            in_key
        ));
    }
    if let Some(d) = &f.description {
        out.push(format!(
            "{}{} ({}, {} bpm)",
            d.trim_end_matches('.'),
            in_key,
            f.genre,
            bpm
        ));
    }
    out.iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// One phrasing chosen at random, plus all of them.
pub fn caption(f: &Facts, rng: &mut Rng) -> (String, Vec<String>) {
    let all = phrasings(f);
    (rng.choose(&all).clone(), all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            genre: "bossa nova".into(),
            description: Some("Standard bossanova beat.".into()),
            instruments: vec![
                "nylon string guitar".into(),
                "acoustic bass".into(),
                "drums".into(),
            ],
            bpm: 90.2,
            key: Some("A minor".into()),
            time_signature: Some("4/4".into()),
            artist: Some("Bob van der Poel".into()),
        }
    }

    #[test]
    fn every_phrasing_states_the_facts() {
        let all = phrasings(&facts());
        assert!(all.len() >= 4);
        assert_eq!(
            all[0],
            "Moderate bossa nova in A minor, 90 bpm with nylon string guitar, acoustic bass and drums. Standard bossanova beat."
        );
        for c in &all {
            assert!(c.to_lowercase().contains("bossa"), "{c}");
            assert!(
                c.contains("90") || c.contains("moderate"),
                "tempo missing: {c}"
            );
            assert!(!c.contains("  "), "{c}");
        }
    }

    #[test]
    fn missing_facts_are_left_out_cleanly() {
        let f = Facts {
            description: None,
            instruments: vec![],
            key: None,
            time_signature: None,
            artist: None,
            ..facts()
        };
        for c in phrasings(&f) {
            assert!(
                !c.contains(" in ,") && !c.contains("with ,") && !c.ends_with(' '),
                "{c}"
            );
        }
        assert_eq!(tempo_word(60.0), "slow");
        let fast = Facts {
            genre: "fast waltz".into(),
            bpm: 190.0,
            ..facts()
        };
        for c in phrasings(&fast) {
            assert!(!c.to_lowercase().contains("fast fast"), "{c}");
        }
        assert_eq!(tempo_word(150.0), "fast");
    }
}
