//! The captioned corpus builder: plans clips from the sources (MMA grooves, music21 folk
//! tunes), renders them in parallel with SoundFonts, and
//! writes a Hugging Face AudioFolder (`DIR/{train,test}/*.wav` + `metadata.jsonl`).
//!
//! Every clip is a pure function of (seed, clip index), so a build can be interrupted and
//! resumed (finished clips, marked by their JSON sidecar, are kept) and gives the same corpus
//! whatever the thread count. The test split holds out whole styles, so no test clip shares
//! a groove or a tune with training.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::abc::{self, Tune};
use crate::caption::{self, Facts};
use crate::error::{CorpusError, Result};
use crate::midi::{self, Renderer};
use crate::mma::{self, Groove, Song};
use musicdiff_common::atomic::write_bytes;
use musicdiff_common::rng::{Rng, stable_hash};
use musicdiff_dsp::audio::{WavFormat, write_wav};

/// One line of `metadata.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    /// Path of the audio relative to the split directory.
    pub file_name: String,
    /// The caption used for training.
    pub caption: String,
    /// Every phrasing of the caption.
    pub captions: Vec<String>,
    pub genre: String,
    pub artist: String,
    pub bpm: f64,
    pub key: String,
    pub time_signature: String,
    pub instruments: Vec<String>,
    /// Seconds.
    pub duration: f64,
    /// Where the music comes from, e.g. `mma:bossanova/BossaNova1Sus`.
    pub source: String,
    pub license: String,
    /// The SoundFont it was rendered with.
    pub soundfont: String,
}

/// Options of a corpus build.
#[derive(Debug, Clone)]
pub struct CorpusConfig {
    pub out: PathBuf,
    /// Total audio to produce.
    pub hours: f64,
    /// Target length of one clip.
    pub clip_seconds: f64,
    /// SoundFonts to render with (chosen per clip).
    pub soundfonts: Vec<PathBuf>,
    pub seed: u64,
    pub sample_rate: u32,
    /// Share of styles held out for the test split.
    pub test_fraction: f64,
    /// Chance that a channel's instrument is swapped within its GM family.
    pub remap_probability: f64,
    /// Render only this split ("train" or "test"), leaving the other's files and metadata
    /// alone: the held-out clips of a corpus a model was trained on, without rendering the
    /// training clips again (each clip depends only on the seed and its index).
    pub only_split: Option<String>,
}

impl CorpusConfig {
    /// Number of clips the build aims for.
    pub fn n_clips(&self) -> usize {
        (self.hours * 3600.0 / self.clip_seconds).ceil() as usize
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(CorpusError::Invalid { name, reason });
        if !(self.hours > 0.0 && self.hours <= 10_000.0) {
            return bad("hours", format!("{} must be in (0, 10000]", self.hours));
        }
        if !(2.0..=600.0).contains(&self.clip_seconds) {
            return bad(
                "clip-seconds",
                format!("{} must be in [2, 600]", self.clip_seconds),
            );
        }
        if self.soundfonts.is_empty() {
            return bad("soundfont", "at least one SoundFont is needed".into());
        }
        if let Some(split) = &self.only_split
            && split != "train"
            && split != "test"
        {
            return bad(
                "only-split",
                format!("must be train or test, not '{split}'"),
            );
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return bad(
                "test-fraction",
                format!("{} must be in [0, 1)", self.test_fraction),
            );
        }
        Ok(())
    }
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct CorpusReport {
    /// Clips rendered by this run.
    pub rendered: usize,
    /// Clips found finished from an earlier run.
    pub resumed: usize,
    /// Clips that failed, with the reason.
    pub failed: Vec<(String, String)>,
    pub train_clips: usize,
    pub test_clips: usize,
    /// Hours of audio in the corpus.
    pub hours: f64,
    pub seconds_elapsed: f64,
    /// Grooves and folk tunes available, and styles held out for testing.
    pub grooves: usize,
    pub tunes: usize,
    pub test_styles: Vec<String>,
    /// Clips per source in the corpus.
    pub mma_clips: usize,
    pub tune_clips: usize,
    /// Scores in formats without a converter here (MusicXML, kern), not used.
    pub skipped_scores: abc::Skipped,
}

/// Is the item named `key` held out for the test split?
fn is_test(key: &str, fraction: f64) -> bool {
    (stable_hash(key) % 10_000) as f64 / 10_000.0 < fraction
}

/// Where the music comes from.
pub struct Sources {
    /// MMA's home directory (`musicdiff_common::assets::mma_home`).
    pub mma_home: PathBuf,
    /// The music21 corpus and the abc2midi executable, when folk tunes are wanted.
    pub music21: Option<(PathBuf, PathBuf)>,
}

/// The source of one clip.
#[derive(Clone, Copy)]
enum Item<'a> {
    Groove(&'a Groove),
    Tune(&'a Tune),
}

impl Item<'_> {
    fn id(&self, index: usize) -> String {
        match self {
            Item::Groove(g) => format!("mma-{index:06}-{}", g.name.to_lowercase()),
            Item::Tune(t) => format!(
                "abc-{index:06}-{}-{}",
                t.collection
                    .to_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                t.number
            ),
        }
    }

    /// Whole styles and whole tunes are held out, never single clips of them.
    fn split(&self, cfg: &CorpusConfig) -> &'static str {
        let key = match self {
            Item::Groove(g) => g.style.clone(),
            Item::Tune(t) => t.key_id(),
        };
        if is_test(&key, cfg.test_fraction) {
            "test"
        } else {
            "train"
        }
    }
}

/// Licences of the SoundFonts that scripts/fetch-assets.sh installs.
fn soundfont_license(name: &str) -> &'static str {
    match name {
        "FluidR3_GM" => "MIT",
        "TimGM6mb" => "GPL-2.0",
        _ => "see the SoundFont's own terms",
    }
}

/// Shortest clip worth keeping, in seconds.
const MIN_CLIP_SECONDS: f64 = 4.0;

/// Renders one clip; returns its metadata.
fn render_clip(
    index: usize,
    item: Item,
    cfg: &CorpusConfig,
    sources: &Sources,
    renderers: &[Renderer],
) -> Result<ClipMeta> {
    let mut rng = Rng::for_item(cfg.seed, index as u64);
    let renderer = rng.choose(renderers);
    let id = item.id(index);
    let work = tempfile::tempdir().map_err(|e| CorpusError::io(std::env::temp_dir(), e))?;
    let mut beat_bpm = None;
    let (midi_bytes, max_seconds, song) = match item {
        Item::Groove(g) => {
            let song = Song::random(g, cfg.clip_seconds, &mut rng);
            let bytes = song.render_midi(&sources.mma_home, work.path(), &id)?;
            let bytes = midi::remap_programs(&bytes, &id, &mut rng, cfg.remap_probability)?;
            let max = song.seconds() + 1.0;
            (bytes, max, Some(song))
        }
        Item::Tune(t) => {
            let (_, abc2midi) = sources.music21.as_ref().expect("tunes come with abc2midi");
            let program = *rng.choose(abc::MELODY_PROGRAMS);
            let (text, bpm) = t.to_abc(program, &mut rng);
            beat_bpm = bpm;
            let bytes = abc::abc_to_midi(abc2midi, &text, work.path(), &id)?;
            (bytes, cfg.clip_seconds, None)
        }
    };
    let info = midi::analyze(&midi_bytes, &id)?;
    let mut audio = renderer.render(&midi_bytes, &id, 1.0, max_seconds)?;
    let seconds = audio.len() as f64 / cfg.sample_rate as f64;
    if seconds < MIN_CLIP_SECONDS {
        return Err(CorpusError::TooShort {
            source_id: id,
            seconds,
            min: MIN_CLIP_SECONDS,
        });
    }
    if matches!(item, Item::Tune(_)) && seconds >= max_seconds - 1e-3 {
        // The tune goes on past the clip: fade out over half a second instead of a cut.
        let n = (0.5 * cfg.sample_rate as f64) as usize;
        let len = audio.len();
        for (k, v) in audio[len - n..].iter_mut().enumerate() {
            *v *= 1.0 - k as f32 / n as f32;
        }
    }
    let gain = midi::normalise(&mut audio, -20.0, 0.98);
    if gain == 1.0 && audio.iter().all(|v| v.abs() < 1e-6) {
        return Err(CorpusError::Midi {
            source_id: id,
            detail: "rendered silence".into(),
        });
    }
    let split = item.split(cfg);
    let dir = cfg.out.join(split);
    write_wav(
        &dir.join(format!("{id}.wav")),
        &audio,
        cfg.sample_rate,
        WavFormat::Pcm16,
    )?;

    let sf_license = format!(
        "SoundFont {}: {}",
        renderer.name(),
        soundfont_license(renderer.name())
    );
    let (facts, source, license) = match (item, song) {
        (Item::Groove(g), Some(song)) => (
            Facts {
                genre: g.genre.to_string(),
                description: Some(g.description.clone()),
                instruments: info.instruments.clone(),
                bpm: song.bpm as f64,
                key: Some(song.key()),
                time_signature: Some(format!("{}/4", g.beats)),
                artist: Some(
                    g.author
                        .as_ref()
                        .map(|a| format!("MMA groove library ({a})"))
                        .unwrap_or_else(|| "MMA groove library".into()),
                ),
            },
            format!("mma:{}/{}", g.style, g.name),
            format!("MMA groove library: GPL-2.0-or-later; {sf_license}"),
        ),
        (Item::Tune(t), _) => (
            Facts {
                genre: t.genre(),
                description: Some(format!("\"{}\"", t.title.trim_matches(['"', ' ']))),
                instruments: info.instruments.clone(),
                bpm: beat_bpm.or(info.bpm).unwrap_or(120.0).round(),
                key: t.key.clone().or(info.key.clone()),
                time_signature: t
                    .meter
                    .clone()
                    .or_else(|| info.time_signature.map(|(n, d)| format!("{n}/{d}"))),
                artist: Some(t.artist()),
            },
            format!("music21:{}#{}", t.file, t.number),
            format!("traditional tune, public domain (music21 corpus); {sf_license}"),
        ),
        (Item::Groove(_), None) => unreachable!("a groove always comes with its song"),
    };
    let (caption, captions) = caption::caption(
        &Facts {
            artist: None,
            ..facts.clone()
        },
        &mut rng,
    );
    let meta = ClipMeta {
        file_name: format!("{id}.wav"),
        caption,
        captions,
        genre: facts.genre,
        artist: facts.artist.unwrap_or_default(),
        bpm: facts.bpm,
        key: facts.key.unwrap_or_default(),
        time_signature: facts.time_signature.unwrap_or_default(),
        instruments: info.instruments,
        // Microseconds are plenty, and short decimals read back exactly.
        duration: (seconds * 1e6).round() / 1e6,
        source,
        license,
        soundfont: renderer.name().to_string(),
    };
    let sidecar = dir.join(format!("{id}.json"));
    let text = serde_json::to_string(&meta).expect("metadata serialises");
    write_bytes(&sidecar, text.as_bytes()).map_err(musicdiff_dsp::DspError::from)?;
    Ok(meta)
}

/// A finished clip from an earlier run, if both its audio and sidecar exist.
fn finished(index: usize, item: Item, cfg: &CorpusConfig) -> Option<ClipMeta> {
    let dir = cfg.out.join(item.split(cfg));
    let id = item.id(index);
    if !dir.join(format!("{id}.wav")).exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(format!("{id}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// A seeded permutation of `0..n`.
fn shuffled(n: usize, seed: u64, salt: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::for_item(seed, salt);
    for i in (1..n).rev() {
        order.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    order
}

/// Builds (or resumes) the corpus: three clips in five from MMA grooves and, when the music21
/// corpus is given, two in five from folk tunes. `progress(done, total)` follows each clip.
pub fn build(
    cfg: &CorpusConfig,
    sources: &Sources,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CorpusReport> {
    cfg.validate()?;
    let start = Instant::now();
    let grooves = mma::load_grooves(&sources.mma_home)?;
    if grooves.is_empty() {
        return Err(CorpusError::NotFound(musicdiff_common::NotFound {
            what: "MMA grooves".into(),
            looked: vec![sources.mma_home.join("lib/stdlib")],
            hint: "install them with scripts/fetch-assets.sh".into(),
        }));
    }
    let (tunes, skipped) = match &sources.music21 {
        Some((corpus, _)) => abc::load_tunes(corpus)?,
        None => (Vec::new(), abc::Skipped::default()),
    };
    let renderers = cfg
        .soundfonts
        .iter()
        .map(|p| Renderer::load(p, cfg.sample_rate))
        .collect::<Result<Vec<_>>>()?;
    for split in ["train", "test"] {
        let d = cfg.out.join(split);
        std::fs::create_dir_all(&d).map_err(|e| CorpusError::io(&d, e))?;
    }
    let n = cfg.n_clips();
    // Seeded visiting orders, so that small builds still cover many styles and collections.
    let groove_order = shuffled(grooves.len(), cfg.seed, u64::MAX);
    let tune_order = shuffled(tunes.len(), cfg.seed, u64::MAX - 1);
    let item_of = |i: usize| -> Item {
        let (block, slot) = (i / 5, i % 5);
        if tunes.is_empty() || slot < 3 {
            let j = if tunes.is_empty() {
                i
            } else {
                block * 3 + slot
            };
            Item::Groove(&grooves[groove_order[j % grooves.len()]])
        } else {
            let k = block * 2 + (slot - 3);
            Item::Tune(&tunes[tune_order[k % tunes.len()]])
        }
    };

    let done = AtomicUsize::new(0);
    let resumed = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let metas: Vec<Option<ClipMeta>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let item = item_of(i);
            if cfg
                .only_split
                .as_deref()
                .is_some_and(|s| s != item.split(cfg))
            {
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
                return None;
            }
            let result = match finished(i, item, cfg) {
                Some(m) => {
                    resumed.fetch_add(1, Ordering::Relaxed);
                    Some(m)
                }
                None => match render_clip(i, item, cfg, sources, &renderers) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        failed
                            .lock()
                            .expect("no panics while holding the lock")
                            .push((item.id(i), e.to_string()));
                        None
                    }
                },
            };
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
            result
        })
        .collect();

    let mut report = CorpusReport {
        resumed: resumed.into_inner(),
        failed: failed.into_inner().expect("lock not poisoned"),
        grooves: grooves.len(),
        tunes: tunes.len(),
        skipped_scores: skipped,
        ..Default::default()
    };
    report.failed.sort();
    let mut styles: Vec<String> = grooves
        .iter()
        .filter(|g| is_test(&g.style, cfg.test_fraction))
        .map(|g| g.style.clone())
        .collect();
    styles.dedup();
    report.test_styles = styles;
    for split in ["train", "test"] {
        if cfg.only_split.as_deref().is_some_and(|s| s != split) {
            continue;
        }
        let mut lines = String::new();
        let mut count = 0;
        for (i, m) in metas.iter().enumerate() {
            let Some(m) = m else { continue };
            let item = item_of(i);
            if item.split(cfg) != split {
                continue;
            }
            match item {
                Item::Groove(_) => report.mma_clips += 1,
                Item::Tune(_) => report.tune_clips += 1,
            }
            lines.push_str(&serde_json::to_string(m).expect("metadata serialises"));
            lines.push('\n');
            report.hours += m.duration / 3600.0;
            count += 1;
        }
        let path = cfg.out.join(split).join("metadata.jsonl");
        write_bytes(&path, lines.as_bytes()).map_err(musicdiff_dsp::DspError::from)?;
        if split == "train" {
            report.train_clips = count;
        } else {
            report.test_clips = count;
        }
    }
    report.rendered = report.train_clips + report.test_clips - report.resumed;
    if report.train_clips + report.test_clips == 0 {
        let (id, why) = report
            .failed
            .first()
            .cloned()
            .unwrap_or_else(|| ("-".into(), "no clips were planned".into()));
        return Err(CorpusError::Tool {
            tool: "corpus build",
            input: id,
            detail: format!("no clip could be rendered; first failure: {why}"),
        });
    }
    report.seconds_elapsed = start.elapsed().as_secs_f64();
    Ok(report)
}
