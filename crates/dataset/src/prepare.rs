//! `data prepare`: turns an AudioFolder or Hugging Face parquet dataset into training shards. Each piece is cut into
//! fixed windows (with `seconds_start` and `seconds_total` kept for timing conditioning, as
//! Stable Audio does), each window becomes a log-mel `[n_mels, frames]`, and each caption is
//! encoded once by MiniLM into token states and a sentence vector. Shards are safetensors
//! files of a fixed group of records, written atomically with a JSON summary beside them, so
//! an interrupted run resumes at the first missing shard and a repeated run changes nothing.
//! Resuming checks the source: each summary records a fingerprint of its shard's inputs (audio
//! paths, sizes and modification times, captions, splits, fields) and the shard file's size and
//! SHA-256; a shard whose inputs changed or whose file is damaged is redone, with a note. A
//! directory prepared from another dataset (`prepare-config.json` records its canonical path)
//! or with other options is refused rather than overwritten: its shards may be someone's only
//! copy of that preparation, and a different `--data` is more likely a wrong `--out`.
//! The manifest at the end holds the configuration, the shard list, what was skipped and why,
//! and per-mel-band normalisation statistics (mean and standard deviation over all frames of
//! the training split), which the loader applies.

use std::collections::HashMap;
use std::path::Path;

use musicdiff_common::atomic::write_bytes;
use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
use musicdiff_text::TextEncoder;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audiofolder::{self, Problem, Record};
use crate::error::{DataError, Result};
use crate::schema::{self, Split};
use musicdiff_dsp::normalise::Normaliser;

/// Options of `data prepare` (the `[prepare]`-less TOML of `configs/data/*.toml`; missing
/// keys take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    /// Window length in seconds.
    pub window_seconds: f64,
    /// Step between window starts in seconds.
    pub window_hop_seconds: f64,
    /// A last, shorter window is kept (padded with silence) if it has at least this much audio.
    pub min_seconds: f64,
    /// Records per shard.
    pub records_per_shard: usize,
    /// Clips quieter than this RMS (dBFS) are skipped as silent.
    pub silence_dbfs: f64,
    pub caption_column: String,
    /// For parquet datasets: the column holding `{bytes, path}` audio structs.
    pub audio_column: String,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        Self {
            sample_rate: 22050,
            n_fft: 1024,
            hop_length: 256,
            n_mels: 80,
            window_seconds: 10.0,
            window_hop_seconds: 10.0,
            min_seconds: 5.0,
            records_per_shard: 64,
            silence_dbfs: -60.0,
            caption_column: "caption".into(),
            audio_column: "audio".into(),
        }
    }
}

impl PrepareConfig {
    pub fn spectrogram(&self) -> SpectrogramConfig {
        SpectrogramConfig::new(self.sample_rate, self.n_fft, self.hop_length, self.n_mels)
    }

    /// Samples per window.
    pub fn window_samples(&self) -> usize {
        (self.window_seconds * self.sample_rate as f64).round() as usize
    }

    /// Log-mel frames per window.
    pub fn window_frames(&self) -> usize {
        self.window_samples() / self.hop_length + 1
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(DataError::Invalid { name, reason });
        if !(self.window_seconds > 0.5 && self.window_seconds <= 600.0) {
            return bad(
                "window-seconds",
                format!("{} must be in (0.5, 600]", self.window_seconds),
            );
        }
        if !(self.window_hop_seconds > 0.0 && self.window_hop_seconds <= self.window_seconds) {
            return bad(
                "window-hop-seconds",
                format!("{} must be in (0, window]", self.window_hop_seconds),
            );
        }
        if !(self.min_seconds >= 0.0 && self.min_seconds <= self.window_seconds) {
            return bad(
                "min-seconds",
                format!("{} must be in [0, window]", self.min_seconds),
            );
        }
        if self.records_per_shard == 0 {
            return bad("records-per-shard", "must be at least 1".into());
        }
        LogMelExtractor::new(self.spectrogram())?;
        Ok(())
    }
}

/// Start samples of the windows of a clip of `len` samples.
pub fn window_starts(len: usize, cfg: &PrepareConfig) -> Vec<usize> {
    let (win, hop) = (
        cfg.window_samples(),
        ((cfg.window_hop_seconds * cfg.sample_rate as f64).round() as usize).max(1),
    );
    let min = (cfg.min_seconds * cfg.sample_rate as f64).round() as usize;
    let mut starts = Vec::new();
    let mut s = 0;
    while s < len {
        let left = len - s;
        if left >= win || (left >= min.max(1) && (starts.is_empty() || left >= min)) {
            starts.push(s);
        }
        if left <= win {
            break;
        }
        s += hop;
    }
    starts
}

/// Summary of one shard, written beside it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSummary {
    pub file: String,
    /// Fingerprint of the shard's inputs (see [`fingerprint`]); a resumed run redoes the shard
    /// if it changed. Empty in summaries written before it was recorded.
    #[serde(default)]
    pub source: String,
    /// Size in bytes and SHA-256 (hex) of the shard file, verified before a resumed run keeps
    /// it.
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub sha256: String,
    pub records: usize,
    pub windows: usize,
    pub train_windows: usize,
    pub seconds: f64,
    pub skipped: Vec<(String, String)>,
    pub truncated_captions: usize,
    /// Per mel band: sum and sum of squares of valid training frames, and their count.
    pub mel_sum: Vec<f64>,
    pub mel_sum_sq: Vec<f64>,
    pub mel_frames: u64,
    /// Content hashes ([`musicdiff_dsp::audio::Audio::content_hash`]) of the shard's
    /// training-split clips, so that a model can name what it was trained on and an evaluation
    /// can refuse to test on it. Empty in summaries written before they were recorded.
    #[serde(default)]
    pub train_clips: Vec<String>,
}

/// The manifest of a prepared dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub config: PrepareConfig,
    pub source: String,
    pub text_model: String,
    pub shards: Vec<ShardSummary>,
    pub windows: usize,
    pub hours: f64,
    pub skipped: Vec<(String, String)>,
    /// Per mel band mean and standard deviation of the training split's log-mels.
    pub mel_mean: Vec<f64>,
    pub mel_std: Vec<f64>,
}

impl Manifest {
    /// The normalisation the loader applies (and a model trained on these shards carries).
    pub fn normaliser(&self) -> Normaliser {
        Normaliser::from_f64(&self.mel_mean, &self.mel_std)
    }

    /// Content hashes of every training-split clip, sorted and distinct; `None` when a shard
    /// with training windows was prepared before the hashes were recorded (prepare the data
    /// again to record them).
    pub fn training_clips(&self) -> Option<Vec<String>> {
        if self
            .shards
            .iter()
            .any(|s| s.train_windows > 0 && s.train_clips.is_empty())
        {
            return None;
        }
        let mut all: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| s.train_clips.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        Some(all)
    }
}

/// What `prepare` did.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub manifest: Manifest,
    pub shards_written: usize,
    pub shards_kept: usize,
    pub problems: Vec<Problem>,
    /// One line per shard of an earlier run that was redone or removed, and why.
    pub notes: Vec<String>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Fingerprint of the inputs of one shard: SHA-256 over, per record, the audio path relative
/// to the dataset root, the audio file's size and modification time, the caption, the split
/// and the other metadata fields. Modification times go only here, never into a shard, so
/// shards stay byte-for-byte reproducible.
pub fn fingerprint(records: &[Record], root: &Path) -> String {
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let meta = std::fs::metadata(&r.audio).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos().to_string());
            serde_json::json!({
                "audio": relative(&r.audio, root),
                "bytes": meta.map(|m| m.len()),
                "modified_ns": modified,
                "caption": r.caption,
                "split": r.split,
                "fields": r.fields,
            })
        })
        .collect();
    sha256_hex(
        serde_json::to_string(&rows)
            .expect("records serialise")
            .as_bytes(),
    )
}

/// One decoded, windowed record.
struct Decoded {
    record: Record,
    /// [`musicdiff_dsp::audio::Audio::content_hash`] of the decoded file.
    content_hash: String,
    windows: Vec<(usize, Vec<f32>)>,
    seconds_total: f64,
}

fn decode(record: &Record, cfg: &PrepareConfig) -> std::result::Result<Decoded, String> {
    let (audio, content_hash) =
        musicdiff_dsp::audio::load_mono_hashed(&record.audio, cfg.sample_rate)
            .map_err(|e| e.to_string())?;
    let rms =
        (audio.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / audio.len().max(1) as f64).sqrt();
    if 20.0 * rms.max(1e-12).log10() < cfg.silence_dbfs {
        return Err(format!("silent (RMS below {} dBFS)", cfg.silence_dbfs));
    }
    let win = cfg.window_samples();
    let starts = window_starts(audio.len(), cfg);
    if starts.is_empty() {
        return Err(format!("shorter than {} s", cfg.min_seconds));
    }
    let windows = starts
        .into_iter()
        .map(|s| {
            let mut w = audio[s..(s + win).min(audio.len())].to_vec();
            w.resize(win, 0.0);
            (s, w)
        })
        .collect();
    Ok(Decoded {
        record: record.clone(),
        content_hash,
        windows,
        seconds_total: audio.len() as f64 / cfg.sample_rate as f64,
    })
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// One window of a decoded record: (index into the decoded records, start sample, samples).
type Window<'a> = (usize, usize, &'a Vec<f32>);

/// Encoded captions of a shard's records.
struct Captions {
    /// Token states `[R, L, D]`, mask `[R, L]` (0/1), sentence vectors `[R, D]`.
    tokens: Vec<f32>,
    mask: Vec<u8>,
    sentence: Vec<f32>,
    truncated: usize,
    len: usize,
    dim: usize,
}

/// Per-window valid frames and the training split's per-band statistics.
struct FrameStats {
    valid: Vec<i32>,
    train_windows: usize,
    mel_sum: Vec<f64>,
    mel_sum_sq: Vec<f64>,
    mel_frames: u64,
}

/// Step 1: decodes `records` in parallel; returns the usable ones and `(audio, reason)` for
/// the others.
fn decode_records(
    records: &[Record],
    root: &Path,
    cfg: &PrepareConfig,
) -> (Vec<Decoded>, Vec<(String, String)>) {
    let decoded: Vec<std::result::Result<Decoded, String>> =
        records.par_iter().map(|r| decode(r, cfg)).collect();
    let mut skipped = Vec::new();
    let mut good = Vec::new();
    for (r, d) in records.iter().zip(decoded) {
        match d {
            Ok(d) => good.push(d),
            Err(why) => skipped.push((relative(&r.audio, root), why)),
        }
    }
    (good, skipped)
}

/// Step 2: every window in record order, and its log-mel `[n_mels, frames]`.
fn window_mels<'a>(
    good: &'a [Decoded],
    extractor: &LogMelExtractor,
) -> (Vec<Window<'a>>, Vec<Vec<f32>>) {
    let windows: Vec<Window<'a>> = good
        .iter()
        .enumerate()
        .flat_map(|(ri, d)| d.windows.iter().map(move |(s, w)| (ri, *s, w)))
        .collect();
    let mels = windows
        .par_iter()
        .map(|(_, _, w)| extractor.log_mel(w).into_vec())
        .collect();
    (windows, mels)
}

/// Step 3: MiniLM token states, mask and sentence vector of each record's caption.
fn encode_captions(good: &[Decoded], encoder: &TextEncoder, file: &str) -> Result<Captions> {
    let captions: Vec<&str> = good.iter().map(|d| d.record.caption.as_str()).collect();
    if captions.is_empty() {
        return Ok(Captions {
            tokens: Vec::new(),
            mask: Vec::new(),
            sentence: Vec::new(),
            truncated: 0,
            len: 0,
            dim: encoder.dim(),
        });
    }
    let tensor_err = |e: String| DataError::Tool {
        tool: "text encoder",
        input: file.to_string(),
        detail: e,
    };
    let enc = encoder
        .encode(&captions)
        .map_err(|e| tensor_err(e.to_string()))?;
    let [_, len, dim] = enc.tokens.dims();
    let tokens: Vec<f32> = enc
        .tokens
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .map_err(|e| tensor_err(format!("{e:?}")))?;
    let mask: Vec<u8> = enc
        .mask
        .into_data()
        .try_into_vec::<bool>()
        .map_err(|e| tensor_err(format!("{e:?}")))?
        .into_iter()
        .map(u8::from)
        .collect();
    let sentence: Vec<f32> = enc
        .sentence
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .map_err(|e| tensor_err(format!("{e:?}")))?;
    Ok(Captions {
        tokens,
        mask,
        sentence,
        truncated: enc.truncated.len(),
        len,
        dim,
    })
}

/// Step 4: the frames of each window that hold audio (the rest is padding), and the sum, sum
/// of squares and count of the training split's valid frames per mel band.
fn frame_statistics(
    good: &[Decoded],
    windows: &[Window],
    mels: &[Vec<f32>],
    cfg: &PrepareConfig,
) -> FrameStats {
    let (frames, n_mels) = (cfg.window_frames(), cfg.n_mels);
    let mut st = FrameStats {
        valid: Vec::with_capacity(windows.len()),
        train_windows: 0,
        mel_sum: vec![0.0f64; n_mels],
        mel_sum_sq: vec![0.0f64; n_mels],
        mel_frames: 0,
    };
    for ((ri, start, _), mel) in windows.iter().zip(mels) {
        let d = &good[*ri];
        let left = (d.seconds_total * cfg.sample_rate as f64) as usize - start;
        let v = (left.min(cfg.window_samples()) / cfg.hop_length + 1).min(frames);
        st.valid.push(v as i32);
        if Split::Train.holds(d.record.split.as_deref()) {
            st.train_windows += 1;
            for m in 0..n_mels {
                for &x in &mel[m * frames..m * frames + v] {
                    st.mel_sum[m] += x as f64;
                    st.mel_sum_sq[m] += (x as f64) * (x as f64);
                }
            }
            st.mel_frames += v as u64;
        }
    }
    st
}

/// Step 5: the safetensors bytes of the shard: the tensors and one metadata entry with the
/// records.
fn serialize_shard(
    good: &[Decoded],
    windows: &[Window],
    mels: &[Vec<f32>],
    captions: &Captions,
    valid: &[i32],
    root: &Path,
    cfg: &PrepareConfig,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    let (n, r) = (windows.len(), good.len());
    let (frames, n_mels) = (cfg.window_frames(), cfg.n_mels);
    let mel_flat: Vec<f32> = mels.concat();
    let record_of: Vec<i32> = windows.iter().map(|(ri, _, _)| *ri as i32).collect();
    let start_s: Vec<f32> = windows
        .iter()
        .map(|(_, s, _)| (*s as f64 / cfg.sample_rate as f64) as f32)
        .collect();
    let total_s: Vec<f32> = windows
        .iter()
        .map(|(ri, _, _)| good[*ri].seconds_total as f32)
        .collect();
    let (l, dim) = (captions.len, captions.dim);
    let buffers: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            schema::MEL,
            Dtype::F32,
            vec![n, n_mels, frames],
            f32_bytes(&mel_flat),
        ),
        (
            schema::VALID_FRAMES,
            Dtype::I32,
            vec![n],
            valid.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            schema::WINDOW_RECORD,
            Dtype::I32,
            vec![n],
            record_of.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            schema::SECONDS_START,
            Dtype::F32,
            vec![n],
            f32_bytes(&start_s),
        ),
        (
            schema::SECONDS_TOTAL,
            Dtype::F32,
            vec![n],
            f32_bytes(&total_s),
        ),
        (
            schema::TEXT_TOKENS,
            Dtype::F32,
            vec![r, l, dim],
            f32_bytes(&captions.tokens),
        ),
        (
            schema::TEXT_MASK,
            Dtype::U8,
            vec![r, l],
            captions.mask.clone(),
        ),
        (
            schema::TEXT_SENTENCE,
            Dtype::F32,
            vec![r, dim],
            f32_bytes(&captions.sentence),
        ),
    ];
    let views: Vec<(&str, TensorView)> = buffers
        .iter()
        .map(|(name, dt, shape, bytes)| {
            (
                *name,
                TensorView::new(*dt, shape.clone(), bytes).expect("shapes match their buffers"),
            )
        })
        .collect();
    let records_json: Vec<serde_json::Value> = good
        .iter()
        .map(|d| {
            serde_json::json!({
                "audio": relative(&d.record.audio, root),
                "caption": d.record.caption,
                "split": d.record.split,
                "fields": d.record.fields,
            })
        })
        .collect();
    // One metadata entry only: safetensors keeps metadata in a HashMap, and a single key
    // keeps the file byte-for-byte reproducible.
    let meta = HashMap::from([(
        schema::RECORDS.to_string(),
        serde_json::to_string(&records_json).expect("records serialise"),
    )]);
    safetensors::serialize(views, Some(meta))
}

/// The inputs of one shard.
struct ShardInput<'a> {
    index: usize,
    records: &'a [Record],
    /// Their [`fingerprint`].
    source: String,
}

/// Prepares one shard: writes the shard file and its summary beside it; returns the summary.
fn prepare_shard(
    input: &ShardInput,
    root: &Path,
    out: &Path,
    cfg: &PrepareConfig,
    extractor: &LogMelExtractor,
    encoder: &TextEncoder,
) -> Result<ShardSummary> {
    let file = shard_file(input.index);
    let path = out.join(&file);
    // 1. Decode each record's audio at the target rate and cut it into windows; records that
    //    do not decode, are silent or too short are skipped with the reason.
    let (good, skipped) = decode_records(input.records, root, cfg);
    // 2. Log-mels of every window: [N, n_mels, frames].
    let (windows, mels) = window_mels(&good, extractor);
    // 3. Captions, once per record: token states [R, L, D], mask [R, L], sentence [R, D].
    let captions = encode_captions(&good, encoder, &file)?;
    // 4. Valid frames per window and statistics of training frames, for normalisation.
    let stats = frame_statistics(&good, &windows, &mels, cfg);
    // 5. The shard file, written atomically.
    let bytes = serialize_shard(&good, &windows, &mels, &captions, &stats.valid, root, cfg)
        .map_err(|e| DataError::Json {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    write_bytes(&path, &bytes).map_err(musicdiff_dsp::DspError::from)?;
    // 6. Its summary, with the source fingerprint and the file's size and hash for resuming.
    let summary = ShardSummary {
        file,
        source: input.source.clone(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        records: good.len(),
        windows: windows.len(),
        train_windows: stats.train_windows,
        // fold, not sum: an empty float sum is -0.0.
        seconds: stats.valid.iter().fold(0.0, |acc, v| {
            acc + (*v as f64 - 1.0) * cfg.hop_length as f64 / cfg.sample_rate as f64
        }),
        skipped,
        truncated_captions: captions.truncated,
        mel_sum: stats.mel_sum,
        mel_sum_sq: stats.mel_sum_sq,
        mel_frames: stats.mel_frames,
        train_clips: good
            .iter()
            .filter(|d| Split::Train.holds(d.record.split.as_deref()))
            .map(|d| d.content_hash.clone())
            .collect(),
    };
    write_json(&out.join(summary_file(input.index)), &summary)?;
    Ok(summary)
}

fn shard_file(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}

fn summary_file(index: usize) -> String {
    format!("shard-{index:05}.json")
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable") + "\n";
    write_bytes(path, text.as_bytes()).map_err(musicdiff_dsp::DspError::from)?;
    Ok(())
}

/// What a resumed run does with shard `index` of an earlier run.
enum Resume {
    /// Not started (no summary): prepare it.
    Missing,
    /// Finished, same source, file intact: keep it.
    Keep(ShardSummary),
    /// Finished but stale or damaged: prepare it again, for this reason.
    Redo(String),
}

/// Checks shard `index` of an earlier run against the fingerprint `source` of its inputs now,
/// and its file against the size and SHA-256 its summary recorded.
fn resume(out: &Path, index: usize, source: &str) -> Resume {
    let json = summary_file(index);
    let text = match std::fs::read_to_string(out.join(&json)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Resume::Missing,
        Err(e) => return Resume::Redo(format!("{json} is unreadable ({e})")),
    };
    let summary: ShardSummary = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => return Resume::Redo(format!("{json} is unreadable ({e})")),
    };
    let file = shard_file(index);
    if summary.file != file {
        return Resume::Redo(format!("{json} names {} instead of {file}", summary.file));
    }
    if summary.source.is_empty() {
        return Resume::Redo("its summary records no source fingerprint (older version)".into());
    }
    if summary.source != source {
        return Resume::Redo(
            "its source changed (audio files, captions or metadata of its records)".into(),
        );
    }
    let bytes = match std::fs::read(out.join(&file)) {
        Ok(b) => b,
        Err(e) => return Resume::Redo(format!("{file} is unreadable ({e})")),
    };
    if bytes.len() as u64 != summary.bytes {
        return Resume::Redo(format!(
            "{file} is damaged ({} bytes, {} recorded)",
            bytes.len(),
            summary.bytes
        ));
    }
    if sha256_hex(&bytes) != summary.sha256 {
        return Resume::Redo(format!(
            "{file} is damaged (its SHA-256 differs from the one recorded)"
        ));
    }
    Resume::Keep(summary)
}

/// What `prepare-config.json` records: the options and the dataset a directory was prepared
/// with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prepared {
    /// Canonical path of the dataset.
    source: String,
    config: PrepareConfig,
}

/// Refuses an output directory prepared from another dataset or with other options (its
/// shards would be mixed with incompatible ones); returns what to record for this run.
fn check_directory(out: &Path, data: &Path, cfg: &PrepareConfig) -> Result<Prepared> {
    let source = std::fs::canonicalize(data).map_err(|e| DataError::io(data, e))?;
    let now = Prepared {
        source: source.display().to_string(),
        config: cfg.clone(),
    };
    let path = out.join("prepare-config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(now);
    };
    let bad_json = |e: serde_json::Error| DataError::Json {
        path: path.clone(),
        detail: e.to_string(),
    };
    // Directories prepared before the source was recorded hold the bare options; their shards
    // have no source fingerprint either, so all of them are redone.
    let (old_source, old_config) = match serde_json::from_str::<Prepared>(&text) {
        Ok(p) => (Some(p.source), p.config),
        Err(e) => (
            None,
            serde_json::from_str::<PrepareConfig>(&text).map_err(|_| bad_json(e))?,
        ),
    };
    if &old_config != cfg {
        return Err(DataError::Invalid {
            name: "out",
            reason: format!(
                "{} holds shards prepared with other options; use a new directory",
                out.display()
            ),
        });
    }
    if let Some(old) = old_source.filter(|old| *old != now.source) {
        return Err(DataError::Invalid {
            name: "out",
            reason: format!(
                "{} holds shards prepared from another dataset ({old}, not {}); use a new \
                 directory",
                out.display(),
                now.source
            ),
        });
    }
    Ok(now)
}

/// Prepares the AudioFolder at `data` into shards under `out`. `progress(done, total)` counts
/// shards.
///
/// Resuming: a directory prepared from another dataset (by canonical path) or with other
/// options is refused. Otherwise each shard of an earlier run is kept only if the fingerprint
/// of its inputs is unchanged and its file has the size and SHA-256 its summary recorded;
/// stale or damaged shards are redone and said so in [`PrepareReport::notes`], as are shards
/// left over from a larger earlier listing, which are removed.
pub fn prepare(
    data: &Path,
    out: &Path,
    cfg: &PrepareConfig,
    encoder: &TextEncoder,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PrepareReport> {
    cfg.validate()?;
    let prepared = check_directory(out, data, cfg)?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let listing = if crate::parquet::is_parquet_dataset(data) {
        crate::parquet::read(
            data,
            &cfg.audio_column,
            &cfg.caption_column,
            &out.join("audio-from-parquet"),
        )?
    } else {
        audiofolder::read(data, &cfg.caption_column)?
    };
    let root = std::path::absolute(data).map_err(|e| DataError::io(data, e))?;
    write_json(&out.join("prepare-config.json"), &prepared)?;
    let extractor = LogMelExtractor::new(cfg.spectrogram())?;
    let inputs: Vec<ShardInput> = listing
        .records
        .chunks(cfg.records_per_shard)
        .enumerate()
        .map(|(index, records)| ShardInput {
            index,
            records,
            source: fingerprint(records, &root),
        })
        .collect();
    let total = inputs.len();
    let mut shards = Vec::with_capacity(total);
    let (mut written, mut kept) = (0, 0);
    let mut notes = Vec::new();
    let manifest_path = out.join("manifest.json");
    for input in &inputs {
        let i = input.index;
        let summary = match resume(out, i, &input.source) {
            Resume::Keep(s) => {
                kept += 1;
                s
            }
            other => {
                if let Resume::Redo(why) = other {
                    notes.push(format!("shard {i} ({}) redone: {why}", shard_file(i)));
                }
                // Until the new manifest is written, the directory must not look finished.
                if manifest_path.exists() {
                    std::fs::remove_file(&manifest_path)
                        .map_err(|e| DataError::io(&manifest_path, e))?;
                }
                written += 1;
                prepare_shard(input, &root, out, cfg, &extractor, encoder)?
            }
        };
        shards.push(summary);
        progress(i + 1, total);
    }
    // Shards of an earlier, larger listing.
    for i in total.. {
        let stale: Vec<_> = [summary_file(i), shard_file(i)]
            .into_iter()
            .map(|f| out.join(f))
            .filter(|p| p.exists())
            .collect();
        if stale.is_empty() {
            break;
        }
        for p in stale {
            std::fs::remove_file(&p).map_err(|e| DataError::io(&p, e))?;
        }
        notes.push(format!(
            "shard {i} ({}) removed: the dataset has fewer records now",
            shard_file(i)
        ));
    }
    let n_mels = cfg.n_mels;
    let frames: u64 = shards.iter().map(|s| s.mel_frames).sum();
    let mut mean = vec![0.0; n_mels];
    let mut std = vec![1.0; n_mels];
    if frames > 0 {
        for m in 0..n_mels {
            let sum: f64 = shards.iter().map(|s| s.mel_sum[m]).sum();
            let sq: f64 = shards.iter().map(|s| s.mel_sum_sq[m]).sum();
            mean[m] = sum / frames as f64;
            std[m] = (sq / frames as f64 - mean[m] * mean[m]).max(1e-8).sqrt();
        }
    }
    let mut skipped: Vec<(String, String)> =
        shards.iter().flat_map(|s| s.skipped.clone()).collect();
    skipped.extend(
        listing
            .problems
            .iter()
            .map(|p| (p.location.clone(), p.reason.clone())),
    );
    let manifest = Manifest {
        config: cfg.clone(),
        source: root.display().to_string(),
        text_model: "all-MiniLM-L6-v2".into(),
        windows: shards.iter().map(|s| s.windows).sum(),
        hours: shards.iter().fold(0.0, |acc, s| acc + s.seconds) / 3600.0,
        shards,
        skipped,
        mel_mean: mean,
        mel_std: std,
    };
    write_json(&manifest_path, &manifest)?;
    Ok(PrepareReport {
        manifest,
        shards_written: written,
        shards_kept: kept,
        problems: listing.problems,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_clip_and_keep_a_long_enough_tail() {
        let cfg = PrepareConfig {
            sample_rate: 10,
            window_seconds: 4.0,
            window_hop_seconds: 4.0,
            min_seconds: 2.0,
            ..Default::default()
        };
        assert_eq!(window_starts(100, &cfg), vec![0, 40, 80]); // 10 s: tail of 2 s kept
        assert_eq!(window_starts(90, &cfg), vec![0, 40]); // tail of 1 s dropped
        assert_eq!(window_starts(30, &cfg), vec![0]); // a short clip is one window
        assert_eq!(window_starts(10, &cfg), Vec::<usize>::new()); // below the minimum
        let overlap = PrepareConfig {
            window_hop_seconds: 2.0,
            ..cfg
        };
        assert_eq!(window_starts(80, &overlap), vec![0, 20, 40]);
    }
}
