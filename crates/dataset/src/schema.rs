//! The shard format, in one place for the writer (`prepare`) and the reader (`loader`): the
//! tensor names of a `shard-NNNNN.safetensors`, its metadata key, and the rule that assigns a
//! record to a split.
//!
//! | tensor | shape | dtype | meaning |
//! |---|---|---|---|
//! | `mel` | `[W, n_mels, frames]` | f32 | log-mel of each window (not normalised) |
//! | `valid_frames` | `[W]` | i32 | frames of real audio in each window (the rest is padding) |
//! | `window_record` | `[W]` | i32 | the record (row of `records`) each window comes from |
//! | `seconds_start`, `seconds_total` | `[W]` | f32 | timing conditioning of each window |
//! | `text_tokens` | `[R, L, dim]` | f32 | MiniLM token states of each record's caption |
//! | `text_mask` | `[R, L]` | u8 | 1 for real tokens |
//! | `text_sentence` | `[R, dim]` | f32 | MiniLM sentence vector of each caption |
//!
//! The safetensors metadata key `records` holds the records as a JSON array (`file`,
//! `caption`, `split`, `genre`, `artist`, ...).

pub const MEL: &str = "mel";
pub const VALID_FRAMES: &str = "valid_frames";
pub const WINDOW_RECORD: &str = "window_record";
pub const SECONDS_START: &str = "seconds_start";
pub const SECONDS_TOTAL: &str = "seconds_total";
pub const TEXT_TOKENS: &str = "text_tokens";
pub const TEXT_MASK: &str = "text_mask";
pub const TEXT_SENTENCE: &str = "text_sentence";
/// Metadata key of the records' JSON.
pub const RECORDS: &str = "records";

/// Which windows to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
    All,
}

/// The split name that holds a record out for testing; every other record (or none) trains.
pub const TEST_SPLIT: &str = "test";

impl Split {
    /// Whether a record whose `split` field is `record_split` belongs to this split: the one
    /// rule for the loader and for the normalisation statistics of `prepare` (training split
    /// only).
    pub fn holds(self, record_split: Option<&str>) -> bool {
        let test = record_split == Some(TEST_SPLIT);
        match self {
            Split::All => true,
            Split::Test => test,
            Split::Train => !test,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_split_train() {
        assert!(Split::Train.holds(None));
        assert!(Split::Train.holds(Some("train")));
        assert!(Split::Train.holds(Some("validation")));
        assert!(!Split::Train.holds(Some("test")));
        assert!(Split::Test.holds(Some("test")));
        assert!(!Split::Test.holds(None));
        assert!(Split::All.holds(Some("test")) && Split::All.holds(None));
    }
}
