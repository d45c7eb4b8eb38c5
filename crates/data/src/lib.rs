//! Data for musicdiff: the captioned music corpus builder (MMA grooves rendered with SoundFonts,
//! captions from the sources' metadata and the MIDI itself) and, in later steps, readers for
//! user datasets and the shard writer/loader.
//!
//! Layout follows the Hugging Face AudioFolder convention (`metadata.jsonl` beside the audio,
//! `file_name` relative to it) so that corpora built here and datasets from elsewhere are read
//! the same way.

pub mod abc;
pub mod assets;
pub mod audiofolder;
pub mod caption;
pub mod corpus;
pub mod error;
pub mod gm;
pub mod loader;
pub mod midi;
pub mod mma;
pub mod parquet;
pub mod prepare;
pub mod rng;
pub mod stats;
pub mod walk;

pub use error::{DataError, Result};
