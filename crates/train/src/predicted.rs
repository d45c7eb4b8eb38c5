//! Pairs of (the diffusion model's predicted log-mel, the real audio it should sound like) for
//! fine-tuning the vocoder on the model's own spectrograms: the second reading of the design's
//! "loss from conversion between spectrograms and waveforms", as text-to-speech systems
//! fine-tune their vocoder on the acoustic model's predicted spectrograms (Shen et al. 2018,
//! Tacotron 2, section 3.2; Kong et al. 2020, HiFi-GAN, section 4.4). A prediction lines up with
//! a recording only where the model is told what to make, so the pairs come from training
//! windows noised to a small diffusion time, where the clean estimate is the model's rendering
//! of that recording with its own errors (smeared harmonics, band noise). Per batch of windows:
//! 1. the step batch of the DiT trainer (`batch::make`) with the full-generation task, every
//!    conditioning part kept and the times stratified over `[t_min, t_max)`;
//! 2. one forward of the frozen network; each window's clean estimate in log-mel units
//!    (`conversion::CleanMels`, as the conversion term and generation make it);
//! 3. the window's real frames and the audio they were computed from: frame `k` of the pair is
//!    centred on sample `k * hop` of its audio;
//! 4. written as `OUT/{train,test}/NNNNNN.wav` (32-bit float) beside `NNNNNN.mel.safetensors`
//!    (`log_mel`, `[frames, n_mels]`), which `musicdiff vocoder train --data OUT` reads in
//!    place of the log-mel of the audio (`crate::vocoder`). The pairs are built in
//!    `OUT.partial/` and renamed when complete, so `OUT` never holds a partial set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::{Loader, Split};
use musicdiff_diffusion::masks::MaskKind;
use musicdiff_dsp::audio::{WavFormat, write_wav};
use musicdiff_pipeline::model_dir;
use musicdiff_text::TextEncoder;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::batch::{self, Draw, FieldVectors};
use crate::config::TrainConfig;
use crate::conversion::CleanMels;
use crate::error::{Result, TrainError};

/// The tensor name of a pair's log-mel file.
pub const MEL_TENSOR: &str = "log_mel";
/// What follows a pair's audio stem: `000012.wav` has its mel in `000012.mel.safetensors`.
pub const MEL_EXTENSION: &str = "mel.safetensors";
/// The record of how a pair set was made.
pub const PAIRS_FILE: &str = "pairs.json";

/// What to make.
#[derive(Debug, Clone)]
pub struct PairsOptions {
    /// The diffusion model directory (`musicdiff export`).
    pub model: PathBuf,
    /// Prepared shards of the data it was trained on; their source audio must be present.
    pub data: PathBuf,
    pub out: PathBuf,
    pub text_model: PathBuf,
    /// Windows written from the shards' train and test splits.
    pub train_windows: usize,
    /// Windows for the test pairs: from the shards' test split, topped up with training
    /// windows not among the training pairs when it holds too few.
    pub test_windows: usize,
    /// Diffusion times are stratified over `[t_min, t_max)`.
    pub times: (f64, f64),
    pub seed: u64,
    pub batch_size: usize,
}

/// `OUT/pairs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsRecord {
    /// The model's id and weights hash.
    pub model: String,
    pub model_sha256: String,
    pub data: PathBuf,
    pub times: (f64, f64),
    pub seed: u64,
    pub sample_rate: u32,
    pub hop_length: usize,
    pub n_mels: usize,
    pub train: usize,
    pub test: usize,
    /// Test pairs taken from training windows (the shards' test split held too few).
    pub test_from_train: usize,
    /// Mean absolute difference between predicted and real log-mel (ln units), per split.
    pub mean_abs_error: BTreeMap<String, f64>,
}

/// Progress.
#[derive(Debug, Clone)]
pub enum PairsEvent {
    Started { total: usize, model: String },
    Wrote { done: usize },
}

/// Writes the pairs as `opts` says and returns their record.
pub fn write_pairs(
    opts: &PairsOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(PairsEvent),
) -> Result<PairsRecord> {
    let bad = |path: &Path, detail: String| TrainError::Data {
        path: path.to_path_buf(),
        detail,
    };
    if opts.out.exists() {
        return Err(bad(
            &opts.out,
            "already exists; choose a new --out or remove it".into(),
        ));
    }
    let (lo, hi) = opts.times;
    if !(0.0 <= lo && lo < hi && hi <= 1.0) {
        return Err(TrainError::Config {
            path: opts.out.clone(),
            detail: format!("the times [{lo}, {hi}) must satisfy 0 <= t_min < t_max <= 1"),
        });
    }
    if opts.batch_size == 0 || opts.train_windows == 0 || opts.test_windows == 0 {
        return Err(TrainError::Config {
            path: opts.out.clone(),
            detail: "the batch size and the train and test window counts must be at least 1".into(),
        });
    }
    // The model, its data and the shards' source audio.
    let device = Device::flex();
    let meta = model_dir::read_meta(&opts.model)?;
    let dit = model_dir::load_weights(&opts.model, &meta, &device)?;
    let train = Loader::open(&opts.data, Split::Train, opts.batch_size, opts.seed)?;
    let test = Loader::open(&opts.data, Split::Test, opts.batch_size, opts.seed)?;
    crate::trainer::check_init_data(&opts.model, &meta.data, &train)?;
    let data = crate::trainer::data_info(&train);
    let source = PathBuf::from(&data.source);
    if !source.is_dir() {
        return Err(bad(
            &opts.data,
            format!(
                "the pairs need the audio the shards were prepared from, and {} is not there",
                source.display()
            ),
        ));
    }
    let encoder = TextEncoder::load(&opts.text_model, &device)?;
    let cfg = TrainConfig::for_inference(meta.model.clone());
    let objective = cfg.objective();
    let mels = CleanMels::new(&data, cfg.model.patch_frames, &device);
    let draw = Draw {
        task: Some(MaskKind::Full),
        times: Some(opts.times),
    };

    let partial = opts.out.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| TrainError::io(&partial, e))?;
    }
    on_event(PairsEvent::Started {
        total: opts.train_windows + opts.test_windows,
        model: meta.id.clone(),
    });
    let mut w = Writer {
        device: &device,
        dit: &dit,
        cfg: &cfg,
        objective: &objective,
        mels: &mels,
        encoder: &encoder,
        data: &data,
        source: &source,
        draw,
        fields: FieldVectors::default(),
        stop,
        done: 0,
        partial: &partial,
        out: &opts.out,
    };
    let mut errors = BTreeMap::new();
    // The training pairs, then the test pairs from the test split; when it holds too few
    // windows, the rest are training windows after the training pairs' (held out from the
    // pairs, not from the model's training).
    let mut train_windows = Windows::new(&train);
    let dir = partial.join("train");
    let mut rng = Rng::for_item(opts.seed ^ 0x9A_1E, 0);
    let stats = w.write(
        &mut train_windows,
        &dir,
        0,
        opts.train_windows,
        &mut rng,
        on_event,
    )?;
    if stats.written < opts.train_windows {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(bad(
            &opts.data,
            format!(
                "its train split holds {} usable windows, fewer than the {} asked for",
                stats.written, opts.train_windows
            ),
        ));
    }
    errors.insert("train".to_string(), stats.mean_abs_error());
    let dir = partial.join("test");
    let mut rng = Rng::for_item(opts.seed ^ 0x9A_1E, 1);
    let mut stats = w.write(
        &mut Windows::new(&test),
        &dir,
        0,
        opts.test_windows,
        &mut rng,
        on_event,
    )?;
    let test_from_train = opts.test_windows - stats.written;
    if test_from_train > 0 {
        let more = w.write(
            &mut train_windows,
            &dir,
            stats.written,
            test_from_train,
            &mut rng,
            on_event,
        )?;
        stats.add(&more);
    }
    if stats.written < opts.test_windows {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(bad(
            &opts.data,
            format!(
                "its test split and the training windows left after {} training pairs hold {} usable windows, fewer than the {} test pairs asked for",
                opts.train_windows, stats.written, opts.test_windows
            ),
        ));
    }
    errors.insert("test".to_string(), stats.mean_abs_error());
    let record = PairsRecord {
        model: meta.id.clone(),
        model_sha256: meta.weights.sha256.clone(),
        data: opts.data.clone(),
        times: opts.times,
        seed: opts.seed,
        sample_rate: data.sample_rate,
        hop_length: data.hop_length,
        n_mels: data.n_mels,
        train: opts.train_windows,
        test: opts.test_windows,
        test_from_train,
        mean_abs_error: errors,
    };
    let json = serde_json::to_string_pretty(&record).expect("record serialises");
    let path = partial.join(PAIRS_FILE);
    std::fs::write(&path, json).map_err(|e| TrainError::io(&path, e))?;
    std::fs::rename(&partial, &opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    Ok(record)
}

/// Running sums of one split's pairs.
#[derive(Debug, Default)]
struct SplitStats {
    written: usize,
    error_sum: f64,
    error_values: usize,
}

impl SplitStats {
    fn add(&mut self, o: &SplitStats) {
        self.written += o.written;
        self.error_sum += o.error_sum;
        self.error_values += o.error_values;
    }

    fn mean_abs_error(&self) -> f64 {
        self.error_sum / self.error_values.max(1) as f64
    }
}

/// What steps 1-4 need, and the count of pairs written.
struct Writer<'a> {
    device: &'a Device,
    dit: &'a musicdiff_model::Dit,
    cfg: &'a TrainConfig,
    objective: &'a musicdiff_diffusion::Objective,
    mels: &'a CleanMels,
    encoder: &'a TextEncoder,
    data: &'a model_dir::DataInfo,
    source: &'a Path,
    draw: Draw,
    fields: FieldVectors,
    stop: &'a AtomicBool,
    done: usize,
    partial: &'a Path,
    out: &'a Path,
}

impl Writer<'_> {
    /// Up to `wanted` pairs from `windows` into `dir`, numbered from `first`, with `rng`
    /// drawing the batches' times and noise.
    fn write(
        &mut self,
        windows: &mut Windows<'_>,
        dir: &Path,
        first: usize,
        wanted: usize,
        rng: &mut Rng,
        on_event: &mut dyn FnMut(PairsEvent),
    ) -> Result<SplitStats> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let data = self.data;
        let (hop, n_mels) = (data.hop_length, data.n_mels);
        let hop_seconds = hop as f64 / f64::from(data.sample_rate);
        let mut stats = SplitStats::default();
        if wanted == 0 {
            return Ok(stats);
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_dir_all(self.partial);
                return Err(TrainError::Interrupted {
                    path: self.out.to_path_buf(),
                });
            }
            let mut p = match windows.pending.take() {
                Some(p) => p,
                None => {
                    let Some(b) = windows.batches.next() else {
                        return Ok(stats);
                    };
                    let b = b?;
                    self.fields.add(&b, self.encoder)?;
                    // 1. The step batch: full generation at small times, every part kept.
                    let sb = batch::make(
                        &b,
                        self.cfg,
                        rng,
                        &self.fields,
                        hop_seconds,
                        self.draw,
                        self.device,
                    )?;
                    // 2. The frozen network's clean estimate.
                    let pred = self.dit.forward(sb.input.clone(), &sb.cond);
                    Pending {
                        b,
                        sb,
                        pred,
                        next: 0,
                    }
                }
            };
            let (b, sb, pred) = (&p.b, &p.sb, &p.pred);
            let frames = sb.input.noisy.dims()[1] * self.cfg.model.patch_frames;
            while p.next < b.size {
                let i = p.next;
                p.next += 1;
                // 3. The real frames and their audio.
                let offset = sb.crop_offsets[i];
                let real = b.valid_frames[i].saturating_sub(offset).min(frames);
                if real < 2 {
                    continue;
                }
                let mel: Vec<f32> = self
                    .mels
                    .clean_estimate(pred, sb, i, self.objective)
                    .narrow(0, 0, real)
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 data");
                let start = (f64::from(b.seconds_start[i]) * f64::from(data.sample_rate)).round()
                    as usize
                    + offset * hop;
                let path = self.source.join(&b.audio[i]);
                let audio = musicdiff_dsp::audio::load_mono(&path, data.sample_rate)?;
                let mut target = vec![0.0f32; real * hop];
                if start < audio.len() {
                    let take = target.len().min(audio.len() - start);
                    target[..take].copy_from_slice(&audio[start..start + take]);
                }
                // How far the estimate is from the real log-mel of the same frames.
                let real_mel = &b.mel[i * n_mels * b.frames..(i + 1) * n_mels * b.frames];
                for f in 0..real {
                    for (m, (&mu, &sd)) in data.mel_mean.iter().zip(&data.mel_std).enumerate() {
                        let x = real_mel[m * b.frames + offset + f] * sd + mu;
                        stats.error_sum += f64::from((mel[f * n_mels + m] - x).abs());
                    }
                }
                stats.error_values += real * n_mels;
                // 4. The pair.
                let stem = dir.join(format!("{:06}", first + stats.written));
                write_wav(
                    &stem.with_extension("wav"),
                    &target,
                    data.sample_rate,
                    WavFormat::Float32,
                )?;
                write_mel(&stem.with_extension(MEL_EXTENSION), &mel, real, n_mels)?;
                stats.written += 1;
                self.done += 1;
                on_event(PairsEvent::Wrote { done: self.done });
                if stats.written == wanted {
                    // The batch's other windows stay for the next call.
                    if p.next < b.size {
                        windows.pending = Some(p);
                    }
                    return Ok(stats);
                }
            }
        }
    }
}

/// A split's batches and the unused windows of the last one.
struct Windows<'a> {
    batches: musicdiff_dataset::loader::Epoch<'a>,
    pending: Option<Pending>,
}

impl<'a> Windows<'a> {
    fn new(loader: &'a Loader) -> Self {
        Self {
            batches: loader.epoch(0),
            pending: None,
        }
    }
}

/// A batch with its step batch and estimate, and the next window to write.
struct Pending {
    b: musicdiff_dataset::Batch,
    sb: batch::StepBatch,
    pred: Tensor<3>,
    next: usize,
}

/// Writes a pair's log-mel `[frames, n_mels]`.
fn write_mel(path: &Path, mel: &[f32], frames: usize, n_mels: usize) -> Result<()> {
    let bytes: Vec<u8> = mel.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![frames, n_mels], &bytes)
        .map_err(|e| TrainError::io(path, std::io::Error::other(e.to_string())))?;
    let out = safetensors::serialize([(MEL_TENSOR, view)], None)
        .map_err(|e| TrainError::io(path, std::io::Error::other(e.to_string())))?;
    std::fs::write(path, out).map_err(|e| TrainError::io(path, e))
}

/// The predicted log-mel `[frames, n_mels]` beside the audio file `audio`, if the file is one
/// of a pair set's.
pub fn read_mel(audio: &Path) -> Result<Option<(Vec<f32>, usize, usize)>> {
    let path = audio.with_extension(MEL_EXTENSION);
    if !path.is_file() {
        return Ok(None);
    }
    let bad = |detail: String| TrainError::Data {
        path: path.clone(),
        detail,
    };
    let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let t = st
        .tensor(MEL_TENSOR)
        .map_err(|_| bad(format!("holds no `{MEL_TENSOR}` tensor")))?;
    let shape = t.shape().to_vec();
    if t.dtype() != Dtype::F32 || shape.len() != 2 {
        return Err(bad(format!(
            "`{MEL_TENSOR}` must be f32 [frames, n_mels], not {:?} {shape:?}",
            t.dtype()
        )));
    }
    let mel = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some((mel, shape[0], shape[1])))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pair_mel_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("000003.wav");
        assert!(super::read_mel(&wav).unwrap().is_none());
        let mel: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
        super::write_mel(&wav.with_extension(super::MEL_EXTENSION), &mel, 3, 4).unwrap();
        assert!(dir.path().join("000003.mel.safetensors").is_file());
        let (back, frames, bands) = super::read_mel(&wav).unwrap().unwrap();
        assert_eq!((frames, bands), (3, 4));
        assert_eq!(back, mel);
    }
}
