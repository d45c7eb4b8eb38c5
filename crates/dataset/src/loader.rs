//! Training batches from prepared shards (`data prepare`): shuffled with a seed, normalised with
//! the manifest's per-band statistics, and bounded in memory. Each epoch visits the shards in a
//! seeded order, keeps at most `resident_shards` of them decoded at once, and shuffles the
//! windows of those shards together, so memory depends on the shard size, not the dataset's.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use musicdiff_dsp::controls::{Controls, Meter};
use musicdiff_dsp::key::Key;

use crate::error::{DataError, Result};
use crate::prepare::Manifest;
use crate::schema::{self, Split};
use musicdiff_common::Rng;

/// One training window.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Normalised log-mel `[n_mels, frames]`, row-major.
    pub mel: Vec<f32>,
    pub valid_frames: usize,
    pub seconds_start: f32,
    pub seconds_total: f32,
    /// Caption token states `[tokens, dim]` (real tokens only).
    pub tokens: Vec<f32>,
    pub n_tokens: usize,
    pub sentence: Vec<f32>,
    pub caption: String,
    /// The `genre` and `artist` fields of the record, when it has them (non-empty strings).
    pub genre: Option<String>,
    pub artist: Option<String>,
    /// The tempo, key and meter its metadata states (`bpm`, `key`, `time_signature`).
    pub controls: Controls,
    /// The record's audio file, relative to the manifest's `source` directory.
    pub audio: String,
}

/// A batch, padded to its longest caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub size: usize,
    pub n_mels: usize,
    pub frames: usize,
    /// `[B, n_mels, frames]`.
    pub mel: Vec<f32>,
    pub valid_frames: Vec<usize>,
    pub seconds_start: Vec<f32>,
    pub seconds_total: Vec<f32>,
    /// Longest caption in tokens, and the text width.
    pub max_tokens: usize,
    pub dim: usize,
    /// `[B, max_tokens, dim]`, zero past each caption.
    pub tokens: Vec<f32>,
    /// `[B, max_tokens]`, true for real tokens.
    pub token_mask: Vec<bool>,
    /// `[B, dim]`.
    pub sentence: Vec<f32>,
    pub captions: Vec<String>,
    pub genres: Vec<Option<String>>,
    pub artists: Vec<Option<String>>,
    pub controls: Vec<Controls>,
    /// Each window's audio file, relative to the manifest's `source` directory; the window
    /// starts `seconds_start` into it.
    pub audio: Vec<String>,
}

/// Reads prepared shards.
pub struct Loader {
    dir: PathBuf,
    manifest: Manifest,
    split: Split,
    batch_size: usize,
    resident_shards: usize,
    seed: u64,
}

fn bad(path: &Path, detail: impl Into<String>) -> DataError {
    DataError::Json {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn f32s(st: &SafeTensors, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = st
        .tensor(name)
        .map_err(|e| bad(path, format!("{name}: {e}")))?;
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

fn i32s(st: &SafeTensors, name: &str, path: &Path) -> Result<Vec<i32>> {
    let t = st
        .tensor(name)
        .map_err(|e| bad(path, format!("{name}: {e}")))?;
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The musical controls a record's metadata states: `bpm` (a positive number, or a string of
/// one), `key` ("A minor", "B flat major"; church modes by their third) and `time_signature`
/// ("3/4"). Anything unreadable is unknown.
pub fn record_controls(record: &serde_json::Value) -> Controls {
    let f = &record["fields"];
    let bpm = match &f["bpm"] {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|b| b.is_finite() && *b > 0.0)
    .map(|b| b as f32);
    Controls {
        bpm,
        key: f["key"].as_str().and_then(Key::parse),
        meter: f["time_signature"].as_str().and_then(Meter::parse),
    }
}

/// A non-empty string field of a record's metadata.
fn field(record: &serde_json::Value, name: &str) -> Option<String> {
    record["fields"][name]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Loader {
    /// Opens the prepared dataset in `dir` (reads `manifest.json` only).
    pub fn open(dir: &Path, split: Split, batch_size: usize, seed: u64) -> Result<Self> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
        if batch_size == 0 {
            return Err(DataError::Invalid {
                name: "batch-size",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            split,
            batch_size,
            resident_shards: 4,
            seed,
        })
    }

    /// How many shards may be decoded at once (default 4).
    pub fn with_resident_shards(mut self, n: usize) -> Self {
        self.resident_shards = n.max(1);
        self
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The windows of one shard that belong to the split, normalised.
    pub fn read_shard(&self, index: usize) -> Result<Vec<Example>> {
        let summary = &self.manifest.shards[index];
        let path = self.dir.join(&summary.file);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&path, e.to_string()))?;
        let (shape, mel) = f32s(&st, schema::MEL, &path)?;
        let (n, n_mels, frames) = match shape.as_slice() {
            [n, m, f] => (*n, *m, *f),
            _ => return Err(bad(&path, "mel is not [N, n_mels, frames]")),
        };
        if n_mels != self.manifest.mel_mean.len() {
            return Err(bad(&path, "mel bands differ from the manifest"));
        }
        let valid = i32s(&st, schema::VALID_FRAMES, &path)?;
        let record = i32s(&st, schema::WINDOW_RECORD, &path)?;
        let (_, start) = f32s(&st, schema::SECONDS_START, &path)?;
        let (_, total) = f32s(&st, schema::SECONDS_TOTAL, &path)?;
        let (tshape, tokens) = f32s(&st, schema::TEXT_TOKENS, &path)?;
        let (l, dim) = (tshape[1], tshape[2]);
        let mask = st
            .tensor(schema::TEXT_MASK)
            .map_err(|e| bad(&path, e.to_string()))?
            .data()
            .to_vec();
        let (_, sentence) = f32s(&st, schema::TEXT_SENTENCE, &path)?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| bad(&path, e.to_string()))?;
        let records: Vec<serde_json::Value> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(schema::RECORDS))
            .and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| bad(&path, "no records metadata"))?;
        let normaliser = self.manifest.normaliser();
        let mut out = Vec::new();
        for w in 0..n {
            let r = record[w] as usize;
            if !self.split.holds(records[r]["split"].as_str()) {
                continue;
            }
            let mut m = mel[w * n_mels * frames..(w + 1) * n_mels * frames].to_vec();
            normaliser.normalise(&mut m);
            let n_tokens = mask[r * l..(r + 1) * l].iter().filter(|&&v| v != 0).count();
            out.push(Example {
                mel: m,
                valid_frames: valid[w] as usize,
                seconds_start: start[w],
                seconds_total: total[w],
                tokens: tokens[r * l * dim..(r * l + n_tokens) * dim].to_vec(),
                n_tokens,
                sentence: sentence[r * dim..(r + 1) * dim].to_vec(),
                caption: records[r]["caption"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                genre: field(&records[r], "genre"),
                artist: field(&records[r], "artist"),
                controls: record_controls(&records[r]),
                audio: records[r]["audio"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(out)
    }

    /// The batches of epoch `epoch`: every window of the split once, in an order fixed by
    /// (seed, epoch). The last batch may be smaller.
    pub fn epoch(&self, epoch: u64) -> Epoch<'_> {
        let mut order: Vec<usize> = (0..self.manifest.shards.len()).collect();
        let mut rng = Rng::for_item(self.seed, epoch);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        Epoch {
            loader: self,
            order,
            next_shard: 0,
            pool: Vec::new(),
            rng,
            max_resident: 0,
        }
    }
}

/// Iterator over one epoch's batches.
pub struct Epoch<'a> {
    loader: &'a Loader,
    order: Vec<usize>,
    next_shard: usize,
    pool: Vec<Example>,
    rng: Rng,
    max_resident: usize,
}

impl Epoch<'_> {
    /// Most windows held in memory at once so far.
    pub fn max_resident(&self) -> usize {
        self.max_resident
    }

    fn refill(&mut self) -> Result<()> {
        let mut loaded = 0;
        while loaded < self.loader.resident_shards && self.next_shard < self.order.len() {
            let shard = self.order[self.next_shard];
            self.next_shard += 1;
            self.pool.extend(self.loader.read_shard(shard)?);
            loaded += 1;
        }
        // Shuffle the pool (Fisher-Yates).
        for i in (1..self.pool.len()).rev() {
            self.pool.swap(i, self.rng.range(0, i as u64 + 1) as usize);
        }
        self.max_resident = self.max_resident.max(self.pool.len());
        Ok(())
    }
}

fn collate(examples: Vec<Example>, n_mels: usize) -> Batch {
    let size = examples.len();
    let dim = examples.first().map_or(0, |e| e.sentence.len());
    let n_mels_frames = examples.first().map_or(0, |e| e.mel.len());
    let max_tokens = examples.iter().map(|e| e.n_tokens).max().unwrap_or(0);
    let mut b = Batch {
        size,
        n_mels,
        frames: n_mels_frames / n_mels.max(1),
        mel: Vec::with_capacity(size * n_mels_frames),
        valid_frames: Vec::with_capacity(size),
        seconds_start: Vec::with_capacity(size),
        seconds_total: Vec::with_capacity(size),
        max_tokens,
        dim,
        tokens: vec![0.0; size * max_tokens * dim],
        token_mask: vec![false; size * max_tokens],
        sentence: Vec::with_capacity(size * dim),
        captions: Vec::with_capacity(size),
        genres: Vec::with_capacity(size),
        artists: Vec::with_capacity(size),
        controls: Vec::with_capacity(size),
        audio: Vec::with_capacity(size),
    };
    for (i, e) in examples.into_iter().enumerate() {
        b.mel.extend_from_slice(&e.mel);
        b.valid_frames.push(e.valid_frames);
        b.seconds_start.push(e.seconds_start);
        b.seconds_total.push(e.seconds_total);
        let at = i * max_tokens * dim;
        b.tokens[at..at + e.tokens.len()].copy_from_slice(&e.tokens);
        b.token_mask[i * max_tokens..i * max_tokens + e.n_tokens].fill(true);
        b.sentence.extend_from_slice(&e.sentence);
        b.captions.push(e.caption);
        b.genres.push(e.genre);
        b.artists.push(e.artist);
        b.controls.push(e.controls);
        b.audio.push(e.audio);
    }
    b
}

impl Iterator for Epoch<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let want = self.loader.batch_size;
        // Shards may hold no window of the split (a test-only shard in a train epoch): keep
        // loading until a batch is full or the shards run out.
        while self.pool.len() < want && self.next_shard < self.order.len() {
            if let Err(e) = self.refill() {
                return Some(Err(e));
            }
        }
        if self.pool.is_empty() {
            return None;
        }
        let take = want.min(self.pool.len());
        let examples: Vec<Example> = self.pool.drain(self.pool.len() - take..).collect();
        Some(Ok(collate(examples, self.loader.manifest.mel_mean.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musicdiff_dsp::key::Mode;

    #[test]
    fn record_controls_read_what_the_metadata_states() {
        let r = serde_json::json!({"fields": {
            "bpm": 99.0, "key": "B flat minor", "time_signature": "6/8"
        }});
        let c = record_controls(&r);
        assert_eq!(c.bpm, Some(99.0));
        assert_eq!(c.key, Some(Key::new(10, Mode::Minor)));
        assert_eq!(c.meter, Some(Meter::SixEight));
        // Strings of numbers read; modes map by their third; junk is unknown.
        let r = serde_json::json!({"fields": {
            "bpm": " 120 ", "key": "D mixolydian", "time_signature": "FREI4/4"
        }});
        let c = record_controls(&r);
        assert_eq!(c.bpm, Some(120.0));
        assert_eq!(c.key, Some(Key::new(2, Mode::Major)));
        assert_eq!(c.meter, None);
        let r = serde_json::json!({"fields": {"bpm": -3, "key": 5}});
        assert!(record_controls(&r).is_empty());
        assert!(record_controls(&serde_json::json!({})).is_empty());
    }
}
