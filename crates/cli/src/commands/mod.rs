//! One module per subcommand.

pub mod corpus;
pub mod data;
pub mod eval;
pub mod export;
pub mod generate;
pub mod roundtrip;
pub mod spec;
pub mod train;

use std::path::Path;

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
