//! One module per subcommand.

pub mod corpus;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod generate;
pub mod roundtrip;
pub mod spec;
pub mod train;
pub mod vocoder;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use musicdiff_dsp::audio::{self, Audio};
use musicdiff_dsp::features::LogMelExtractor;

use crate::progress::Ui;

/// Decoded input, before and after conversion to mono at the analysis rate.
pub struct Loaded {
    pub original: Audio,
    pub mono: Vec<f32>,
}

/// Decodes `path`, mixes to mono and resamples to `sample_rate`, with a spinner.
pub fn load(path: &Path, sample_rate: u32, ui: &Ui) -> anyhow::Result<Loaded> {
    let sp = ui.spinner(&format!("decoding {}", path.display()));
    let original = audio::decode_file(path)?;
    sp.set_message(format!(
        "resampling {} Hz -> {sample_rate} Hz",
        original.sample_rate
    ));
    let mono = audio::mix_to_mono(&original.channels);
    let mono = audio::resample(&mono, original.sample_rate, sample_rate)?;
    sp.finish_and_clear();
    Ok(Loaded { original, mono })
}

/// Warns about mel filters that cover no FFT bin (too many mels for the FFT size).
pub fn warn_empty_filters(extractor: &LogMelExtractor, ui: &Ui) {
    let empty = extractor.filterbank().empty_filters();
    if !empty.is_empty() {
        ui.note(format!(
            "warning: {} of {} mel filters are empty (first: {}); use fewer --n-mels or a larger --n-fft",
            empty.len(),
            extractor.config().n_mels,
            empty[0]
        ));
    }
}

/// `--vocoder`: a vocoder directory, or `griffin-lim`.
#[derive(Debug, Clone, PartialEq)]
pub enum VocoderChoice {
    Dir(PathBuf),
    GriffinLim,
}

impl FromStr for VocoderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("give a vocoder directory or `griffin-lim`".into()),
            "griffin-lim" | "gl" => Ok(Self::GriffinLim),
            dir => Ok(Self::Dir(PathBuf::from(dir))),
        }
    }
}

/// The vocoder directory `choice` names: a directory, Griffin-Lim (`None`), or when nothing is
/// named the bundled vocoder (`$MUSICDIFF_VOCODER`, which may also say `griffin-lim`, else
/// `models/vocoder`), falling back to Griffin-Lim with a note when none is installed.
pub fn vocoder_dir(choice: Option<&VocoderChoice>, ui: &Ui) -> Option<PathBuf> {
    let from_env = std::env::var(musicdiff_common::locate::VOCODER_ENV)
        .ok()
        .and_then(|v| v.parse::<VocoderChoice>().ok())
        .filter(|c| *c == VocoderChoice::GriffinLim);
    match choice.or(from_env.as_ref()) {
        Some(VocoderChoice::GriffinLim) => None,
        Some(VocoderChoice::Dir(d)) => Some(d.clone()),
        None => match musicdiff_common::locate::vocoder_dir() {
            Ok(d) => Some(d),
            Err(e) => {
                ui.note(format!(
                    "note: converting with Griffin-Lim: no vocoder installed ({e})"
                ));
                None
            }
        },
    }
}

/// The vocoder `choice` names, loaded ([`vocoder_dir`]; a named directory must load).
pub fn load_vocoder(
    choice: Option<&VocoderChoice>,
    ui: &Ui,
) -> anyhow::Result<Option<musicdiff_vocoder::Vocoder>> {
    let Some(dir) = vocoder_dir(choice, ui) else {
        return Ok(None);
    };
    let sp = ui.spinner(&format!("loading vocoder {}", dir.display()));
    let v = musicdiff_vocoder::Vocoder::load(&dir);
    sp.finish_and_clear();
    Ok(Some(v?))
}
