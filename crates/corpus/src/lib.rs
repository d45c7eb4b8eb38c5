//! The captioned music corpus musicdiff trains on by default, made from what package
//! registries ship: MMA's groove library and the music21 corpus's folk tunes, turned into MIDI
//! (MMA, abc2midi), rendered with General MIDI SoundFonts (rustysynth) and captioned from the
//! sources' metadata and from what the MIDI actually plays (instruments, tempo, key, meter).
//!
//! The output follows the Hugging Face AudioFolder layout (`metadata.jsonl` beside the audio,
//! `file_name` relative to it), so `musicdiff-dataset` reads a corpus built here exactly as it
//! reads anyone's captioned audio.

pub mod abc;
pub mod caption;
pub mod corpus;
pub mod error;
pub mod gm;
pub mod midi;
pub mod mma;

pub use error::{CorpusError, Result};
