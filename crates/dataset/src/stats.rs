//! Summary statistics of a dataset (AudioFolder or parquet): clip count, hours, duration histogram, the
//! most common genres and instruments, and example captions.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::audiofolder::{self, Listing, Problem};
use crate::error::Result;
use musicdiff_common::Rng;

/// What `musicdiff data stats` prints.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub clips: usize,
    pub per_split: BTreeMap<String, usize>,
    pub hours: f64,
    /// Clips whose duration neither the metadata nor the audio header gives.
    pub unknown_duration: usize,
    pub min_seconds: f64,
    pub median_seconds: f64,
    pub max_seconds: f64,
    /// `(label, count)` per duration bucket.
    pub histogram: Vec<(String, usize)>,
    pub top_genres: Vec<(String, usize)>,
    pub top_instruments: Vec<(String, usize)>,
    pub examples: Vec<String>,
    pub problems: usize,
    /// The unusable rows and links not followed, with the reason.
    pub skipped: Vec<Problem>,
}

const BUCKETS: [(f64, &str); 7] = [
    (5.0, "< 5 s"),
    (10.0, "5-10 s"),
    (15.0, "10-15 s"),
    (20.0, "15-20 s"),
    (30.0, "20-30 s"),
    (60.0, "30-60 s"),
    (f64::INFINITY, ">= 60 s"),
];

fn top(counts: BTreeMap<String, usize>, n: usize) -> Vec<(String, usize)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Duration from the row's `duration` field, else from the audio header.
fn seconds(rec: &audiofolder::Record) -> Option<f64> {
    match rec.fields.get("duration") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => musicdiff_dsp::audio::probe_seconds(&rec.audio)
            .ok()
            .flatten(),
    }
}

/// Computes the statistics of a listing; `examples` captions are drawn with `seed`.
pub fn compute(listing: &Listing, examples: usize, seed: u64) -> Stats {
    let mut s = Stats {
        clips: listing.records.len(),
        problems: listing.problems.len(),
        skipped: listing.problems.clone(),
        ..Default::default()
    };
    let mut durations = Vec::new();
    let mut genres = BTreeMap::new();
    let mut instruments = BTreeMap::new();
    let mut hist = vec![0usize; BUCKETS.len()];
    for rec in &listing.records {
        *s.per_split
            .entry(rec.split.clone().unwrap_or_else(|| "(root)".into()))
            .or_default() += 1;
        match seconds(rec) {
            Some(d) => {
                durations.push(d);
                let b = BUCKETS.iter().position(|(hi, _)| d < *hi).unwrap_or(0);
                hist[b] += 1;
            }
            None => s.unknown_duration += 1,
        }
        if let Some(Value::String(g)) = rec.fields.get("genre") {
            *genres.entry(g.clone()).or_default() += 1;
        }
        match rec.fields.get("instruments") {
            Some(Value::Array(items)) => {
                for i in items.iter().filter_map(Value::as_str) {
                    *instruments.entry(i.to_string()).or_default() += 1;
                }
            }
            Some(Value::String(list)) => {
                for i in list
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                {
                    *instruments.entry(i.to_string()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    durations.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (durations.first(), durations.last()) {
        s.min_seconds = *first;
        s.max_seconds = *last;
        s.median_seconds = durations[durations.len() / 2];
    }
    s.hours = durations.iter().fold(0.0, |a, d| a + d) / 3600.0; // an empty sum is -0.0
    s.histogram = BUCKETS
        .iter()
        .zip(hist)
        .map(|((_, label), n)| (label.to_string(), n))
        .collect();
    s.top_genres = top(genres, 10);
    s.top_instruments = top(instruments, 10);
    // Distinct examples: a seeded partial shuffle of the indices.
    let mut rng = Rng::for_item(seed, 0);
    let n = listing.records.len();
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..examples.min(n) {
        let j = rng.range(i as u64, n as u64) as usize;
        idx.swap(i, j);
        s.examples.push(listing.records[idx[i]].caption.clone());
    }
    s
}

/// Reads `root` as an AudioFolder, or as a Hugging Face parquet dataset (whose audio is
/// unpacked into a temporary directory to read durations), and computes its statistics.
pub fn of_dataset(
    root: &Path,
    caption_column: &str,
    audio_column: &str,
    examples: usize,
) -> Result<Stats> {
    if crate::parquet::is_parquet_dataset(root) {
        let work =
            tempfile::tempdir().map_err(|e| crate::DataError::io(std::env::temp_dir(), e))?;
        let listing = crate::parquet::read(root, audio_column, caption_column, work.path())?;
        return Ok(compute(&listing, examples, 0));
    }
    let listing = audiofolder::read(root, caption_column)?;
    Ok(compute(&listing, examples, 0))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn symlink_loops_do_not_hang_or_inflate_stats() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        std::fs::create_dir_all(&train).unwrap();
        std::fs::write(train.join("a.wav"), b"x").unwrap();
        std::fs::write(train.join("b.wav"), b"x").unwrap();
        std::fs::write(
            train.join("metadata.jsonl"),
            "{\"file_name\": \"a.wav\", \"caption\": \"a\"}\n\
             {\"file_name\": \"b.wav\", \"caption\": \"b\", \"duration\": 3}\n",
        )
        .unwrap();
        // With two loops the old walker never returned; with one it counted clips many times.
        std::os::unix::fs::symlink(".", train.join("loop")).unwrap();
        std::os::unix::fs::symlink("..", train.join("up")).unwrap();
        let s = of_dataset(dir.path(), "caption", "audio", 2).unwrap();
        assert_eq!(s.clips, 2);
        assert_eq!(s.per_split["train"], 2);
        assert_eq!(s.problems, 2);
        assert!(
            s.skipped.iter().all(|p| p.reason.contains("not followed")),
            "{:?}",
            s.skipped
        );
    }
}
