//! The reference set: captioned clips held out from training (an AudioFolder directory such as
//! a corpus's `test/`), each cut to the evaluation length at the model's sample rate. Their
//! captions prompt the model, and the clips are what the outputs are compared with.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use musicdiff_dataset::audiofolder;
use musicdiff_dsp::audio;
use serde_json::Value;

use crate::error::{EvalError, Result};

/// One reference clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// A short unique name (the file stem), used for the report's audio and cache files.
    pub id: String,
    pub path: PathBuf,
    pub caption: String,
    /// Mono audio at the model's sample rate, exactly the evaluation length.
    pub audio: Vec<f32>,
    /// SHA-256 of the decoded file ([`musicdiff_dsp::audio::Audio::content_hash`]).
    pub content_hash: String,
    /// The metadata's tempo, for cutting the dice game's bars.
    pub bpm: Option<f64>,
    /// Beats per bar from the metadata's time signature (4 when it has none).
    pub beats_per_bar: usize,
}

/// What loading found besides the clips.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub clips: Vec<Clip>,
    /// Clips described but not used, and why (too short, undecodable).
    pub skipped: Vec<(PathBuf, String)>,
    /// Clips available before the `n` were chosen.
    pub available: usize,
}

/// Beats per bar from a time signature such as "3/4" or "6/8" (compound metres count their
/// dotted beats: 6/8 has 2).
pub fn beats_per_bar(time_signature: &str) -> Option<usize> {
    let (n, d) = time_signature.trim().split_once('/')?;
    let (n, d): (usize, usize) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    if n == 0 || d == 0 {
        return None;
    }
    Some(if d == 8 && n % 3 == 0 && n > 3 {
        n / 3
    } else {
        n
    })
}

/// `n` indices spread evenly over `0..available` (all of them when `n >= available`), so that
/// a small evaluation samples the whole set rather than its first styles.
pub fn spread(available: usize, n: usize) -> Vec<usize> {
    if n >= available {
        return (0..available).collect();
    }
    (0..n).map(|i| i * available / n).collect()
}

/// Reads the clips under `dir` (AudioFolder with a `caption` column), sorted by path, keeps `n`
/// spread over them, and cuts each to `length` samples at `sample_rate` (clips shorter than
/// that are skipped and listed). `progress` is called after each clip is read.
pub fn load(
    dir: &Path,
    n: usize,
    sample_rate: u32,
    length: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded> {
    let listing = audiofolder::read(dir, "caption")?;
    let mut records = listing.records;
    records.sort_by(|a, b| a.audio.cmp(&b.audio));
    if records.is_empty() {
        return Err(EvalError::Reference {
            path: dir.to_path_buf(),
            detail: "holds no captioned audio clip".into(),
        });
    }
    let mut out = Loaded {
        available: records.len(),
        ..Default::default()
    };
    // Take clips in spread order, then fill from the rest when some are too short.
    let first = spread(records.len(), n);
    let chosen: HashSet<usize> = first.iter().copied().collect();
    let order: Vec<usize> = first
        .into_iter()
        .chain((0..records.len()).filter(|i| !chosen.contains(i)))
        .collect();
    let mut ids = HashSet::new();
    for (done, i) in order.into_iter().enumerate() {
        if out.clips.len() == n {
            break;
        }
        let r = &records[i];
        let (mut samples, hash) = match audio::load_mono_hashed(&r.audio, sample_rate) {
            Ok(loaded) => loaded,
            // A clip the user can fix (undecodable, unreadable) is skipped and listed; a
            // failure of the machine stops the run.
            Err(e) if e.is_bad_input() => {
                out.skipped.push((r.audio.clone(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if samples.len() < length {
            out.skipped.push((
                r.audio.clone(),
                format!(
                    "{:.2} s is shorter than the evaluation length of {:.2} s",
                    samples.len() as f64 / sample_rate as f64,
                    length as f64 / sample_rate as f64
                ),
            ));
            continue;
        }
        samples.truncate(length);
        let stem = r
            .audio
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("clip{i}"));
        let mut id: String = stem
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        while !ids.insert(id.clone()) {
            id.push('_');
        }
        let bpm = match r.fields.get("bpm") {
            Some(Value::Number(x)) => x.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .or_else(|| crate::prompt::stated_bpm(&r.caption));
        let beats = match r.fields.get("time_signature") {
            Some(Value::String(s)) => beats_per_bar(s),
            _ => None,
        }
        .unwrap_or(4);
        out.clips.push(Clip {
            id,
            path: r.audio.clone(),
            caption: r.caption.clone(),
            audio: samples,
            content_hash: hash,
            bpm,
            beats_per_bar: beats,
        });
        progress(done + 1, n);
    }
    if out.clips.len() < 2 {
        return Err(EvalError::Reference {
            path: dir.to_path_buf(),
            detail: format!(
                "only {} usable clip(s) of at least {:.2} s; the metrics need two or more",
                out.clips.len(),
                length as f64 / sample_rate as f64
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_the_set_evenly() {
        assert_eq!(spread(10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(3, 5), vec![0, 1, 2]);
        assert_eq!(spread(7, 3), vec![0, 2, 4]);
    }

    #[test]
    fn beats_per_bar_reads_simple_and_compound_metres() {
        assert_eq!(beats_per_bar("4/4"), Some(4));
        assert_eq!(beats_per_bar("3/4"), Some(3));
        assert_eq!(beats_per_bar("6/8"), Some(2));
        assert_eq!(beats_per_bar("9/8"), Some(3));
        assert_eq!(beats_per_bar("3/8"), Some(3));
        assert_eq!(beats_per_bar("x"), None);
        assert_eq!(beats_per_bar("0/4"), None);
    }
}
