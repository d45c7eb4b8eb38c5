//! `data prepare`: turns an AudioFolder or Hugging Face parquet dataset into training shards. Each piece is cut into
//! fixed windows (with `seconds_start` and `seconds_total` kept for timing conditioning, as
//! Stable Audio does), each window becomes a log-mel `[n_mels, frames]`, and each caption is
//! encoded once by MiniLM into token states and a sentence vector. Shards are safetensors
//! files of a fixed group of records, written atomically with a JSON summary beside them, so
//! an interrupted run resumes at the first missing shard and a repeated run changes nothing.
//! The manifest at the end holds the configuration, the shard list, what was skipped and why,
//! and per-mel-band normalisation statistics (mean and standard deviation over all frames of
//! the training split), which the loader applies.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use musicdiff_common::atomic::write_atomic;
use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
use musicdiff_text::TextEncoder;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::audiofolder::{self, Problem, Record};
use crate::error::{DataError, Result};
use crate::schema::Split;
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
        SpectrogramConfig {
            sample_rate: self.sample_rate,
            n_fft: self.n_fft,
            hop_length: self.hop_length,
            n_mels: self.n_mels,
            ..Default::default()
        }
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
}

/// What `prepare` did.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub manifest: Manifest,
    pub shards_written: usize,
    pub shards_kept: usize,
    pub problems: Vec<Problem>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One decoded, windowed record.
struct Decoded {
    record: Record,
    windows: Vec<(usize, Vec<f32>)>,
    seconds_total: f64,
}

fn decode(record: &Record, cfg: &PrepareConfig) -> std::result::Result<Decoded, String> {
    let audio = musicdiff_dsp::audio::load_mono(&record.audio, cfg.sample_rate)
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

/// Prepares shard `index` from `records`; returns its summary.
fn prepare_shard(
    index: usize,
    records: &[Record],
    root: &Path,
    out: &Path,
    cfg: &PrepareConfig,
    extractor: &LogMelExtractor,
    encoder: &TextEncoder,
) -> Result<ShardSummary> {
    let file = format!("shard-{index:05}.safetensors");
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
    let frames = cfg.window_frames();
    let n_mels = cfg.n_mels;
    // 1. Log-mels of every window: [N, n_mels, frames].
    let windows: Vec<(usize, usize, &Vec<f32>)> = good
        .iter()
        .enumerate()
        .flat_map(|(ri, d)| d.windows.iter().map(move |(s, w)| (ri, *s, w)))
        .collect();
    let mels: Vec<Vec<f32>> = windows
        .par_iter()
        .map(|(_, _, w)| extractor.log_mel(w).into_vec())
        .collect();
    // 2. Captions, once per record: token states [R, L, D], mask [R, L], sentence [R, D].
    let captions: Vec<&str> = good.iter().map(|d| d.record.caption.as_str()).collect();
    let (tokens, mask, sentence, truncated, l, dim) = if captions.is_empty() {
        (Vec::new(), Vec::new(), Vec::new(), 0, 0, encoder.dim())
    } else {
        let enc = encoder.encode(&captions).map_err(|e| DataError::Tool {
            tool: "text encoder",
            input: file.clone(),
            detail: e.to_string(),
        })?;
        let [_, l, d] = enc.tokens.dims();
        let tensor_err = |e: String| DataError::Tool {
            tool: "text encoder",
            input: file.clone(),
            detail: e,
        };
        let t: Vec<f32> = enc
            .tokens
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .map_err(|e| tensor_err(format!("{e:?}")))?;
        let m: Vec<u8> = enc
            .mask
            .into_data()
            .try_into_vec::<bool>()
            .map_err(|e| tensor_err(format!("{e:?}")))?
            .into_iter()
            .map(u8::from)
            .collect();
        let s: Vec<f32> = enc
            .sentence
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .map_err(|e| tensor_err(format!("{e:?}")))?;
        (t, m, s, enc.truncated.len(), l, d)
    };

    // 3. Statistics of training frames, for normalisation.
    let mut mel_sum = vec![0.0f64; n_mels];
    let mut mel_sum_sq = vec![0.0f64; n_mels];
    let mut mel_frames = 0u64;
    let mut valid = Vec::with_capacity(windows.len());
    let mut train_windows = 0;
    for ((ri, start, _), mel) in windows.iter().zip(&mels) {
        let d = &good[*ri];
        let left = (d.seconds_total * cfg.sample_rate as f64) as usize - start;
        let v = (left.min(cfg.window_samples()) / cfg.hop_length + 1).min(frames);
        valid.push(v as i32);
        if Split::Train.holds(d.record.split.as_deref()) {
            train_windows += 1;
            for m in 0..n_mels {
                for &x in &mel[m * frames..m * frames + v] {
                    mel_sum[m] += x as f64;
                    mel_sum_sq[m] += (x as f64) * (x as f64);
                }
            }
            mel_frames += v as u64;
        }
    }

    // 4. The shard file.
    let n = windows.len();
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
    let buffers: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "mel",
            Dtype::F32,
            vec![n, n_mels, frames],
            f32_bytes(&mel_flat),
        ),
        (
            "valid_frames",
            Dtype::I32,
            vec![n],
            valid.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "window_record",
            Dtype::I32,
            vec![n],
            record_of.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        ("seconds_start", Dtype::F32, vec![n], f32_bytes(&start_s)),
        ("seconds_total", Dtype::F32, vec![n], f32_bytes(&total_s)),
        (
            "text_tokens",
            Dtype::F32,
            vec![good.len(), l, dim],
            f32_bytes(&tokens),
        ),
        ("text_mask", Dtype::U8, vec![good.len(), l], mask),
        (
            "text_sentence",
            Dtype::F32,
            vec![good.len(), dim],
            f32_bytes(&sentence),
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
        "records".to_string(),
        serde_json::to_string(&records_json).expect("records serialise"),
    )]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| DataError::Json {
        path: out.join(&file),
        detail: e.to_string(),
    })?;
    let path = out.join(&file);
    write_atomic(&path, |w| {
        w.write_all(&bytes)
            .map_err(|e| musicdiff_dsp::DspError::output(&path, &e))
    })?;
    let summary = ShardSummary {
        file,
        records: good.len(),
        windows: n,
        train_windows,
        // fold, not sum: an empty float sum is -0.0.
        seconds: valid.iter().fold(0.0, |acc, v| {
            acc + (*v as f64 - 1.0) * cfg.hop_length as f64 / cfg.sample_rate as f64
        }),
        skipped,
        truncated_captions: truncated,
        mel_sum,
        mel_sum_sq,
        mel_frames,
    };
    write_json(&out.join(format!("shard-{index:05}.json")), &summary)?;
    Ok(summary)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable") + "\n";
    write_atomic(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| musicdiff_dsp::DspError::output(path, &e))
    })?;
    Ok(())
}

/// A finished shard from an earlier run with the same configuration.
fn finished(out: &Path, index: usize) -> Option<ShardSummary> {
    let summary: ShardSummary = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("shard-{index:05}.json"))).ok()?,
    )
    .ok()?;
    out.join(&summary.file).exists().then_some(summary)
}

/// Prepares the AudioFolder at `data` into shards under `out`. `progress(done, total)` counts
/// shards.
pub fn prepare(
    data: &Path,
    out: &Path,
    cfg: &PrepareConfig,
    encoder: &TextEncoder,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PrepareReport> {
    cfg.validate()?;
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
    // A different configuration in the same directory would mix incompatible shards.
    let config_path = out.join("prepare-config.json");
    match std::fs::read_to_string(&config_path) {
        Ok(text) => {
            let old: PrepareConfig = serde_json::from_str(&text).map_err(|e| DataError::Json {
                path: config_path.clone(),
                detail: e.to_string(),
            })?;
            if &old != cfg {
                return Err(DataError::Invalid {
                    name: "out",
                    reason: format!(
                        "{} holds shards prepared with other options; use a new directory",
                        out.display()
                    ),
                });
            }
        }
        Err(_) => write_json(&config_path, cfg)?,
    }
    let extractor = LogMelExtractor::new(cfg.spectrogram())?;
    let chunks: Vec<&[Record]> = listing.records.chunks(cfg.records_per_shard).collect();
    let total = chunks.len();
    let mut shards = Vec::with_capacity(total);
    let (mut written, mut kept) = (0, 0);
    for (i, chunk) in chunks.iter().enumerate() {
        let summary = match finished(out, i) {
            Some(s) => {
                kept += 1;
                s
            }
            None => {
                written += 1;
                prepare_shard(i, chunk, &root, out, cfg, &extractor, encoder)?
            }
        };
        shards.push(summary);
        progress(i + 1, total);
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
    write_json(&out.join("manifest.json"), &manifest)?;
    Ok(PrepareReport {
        manifest,
        shards_written: written,
        shards_kept: kept,
        problems: listing.problems,
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
