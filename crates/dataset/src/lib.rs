//! The dataset pipeline of musicdiff: captioned audio in the layouts people already use
//! (Hugging Face AudioFolder with `metadata.jsonl`/`metadata.csv`, and parquet datasets as the
//! Hub stores them) -> windows -> log-mels + MiniLM caption states -> safetensors shards with a
//! manifest and normalisation statistics (`data prepare`), read back by a seeded,
//! memory-bounded loader for training; and `data stats` for a first look at a dataset.
//!
//! The shard format (tensor names, the split rule) is [`schema`], shared by the writer and the
//! reader. A corpus built by `musicdiff-corpus` is an AudioFolder like any other.

pub mod audiofolder;
pub mod error;
pub mod loader;
pub mod parquet;
pub mod prepare;
pub mod schema;
pub mod stats;

pub use error::{DataError, Result};
pub use loader::{Batch, Example, Loader};
pub use schema::Split;
