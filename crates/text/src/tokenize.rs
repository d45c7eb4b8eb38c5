//! WordPiece tokenisation with the `tokenizers` crate, configured as sentence-transformers runs
//! all-MiniLM-L6-v2: no padding inside the tokenizer (batches are padded here, with a mask) and
//! truncation at the model's 256-token limit, which is reported rather than silent.

use std::path::Path;

use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::error::{Result, TextError};

/// Tokens for one batch, padded to the longest sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Token ids `[batch][max_len]` (row-major), padded with the pad id.
    pub ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding, same layout.
    pub mask: Vec<bool>,
    pub batch: usize,
    pub max_len: usize,
    /// Indices of inputs that were cut at the token limit.
    pub truncated: Vec<usize>,
}

/// The MiniLM tokenizer.
pub struct WordPiece {
    inner: Tokenizer,
    max_tokens: usize,
    pad_id: u32,
}

impl WordPiece {
    /// Loads `tokenizer.json`, turning off its fixed padding and truncating at `max_tokens`.
    pub fn load(path: &Path, max_tokens: usize) -> Result<Self> {
        if !path.exists() {
            return Err(TextError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| TextError::BadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let pad_id = inner
            .get_padding()
            .map(|p: &PaddingParams| p.pad_id)
            .unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok(Self {
            inner,
            max_tokens,
            pad_id,
        })
    }

    /// The token limit, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises `texts` (with `[CLS]` and `[SEP]`) into one padded batch.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Batch> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let max_len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(texts.len() * max_len);
        let mut mask = Vec::with_capacity(texts.len() * max_len);
        let mut truncated = Vec::new();
        for (i, e) in encodings.iter().enumerate() {
            if !e.get_overflowing().is_empty() {
                truncated.push(i);
            }
            ids.extend(e.get_ids().iter().map(|&id| id as i64));
            ids.extend(std::iter::repeat_n(self.pad_id as i64, max_len - e.len()));
            mask.extend(std::iter::repeat_n(true, e.len()));
            mask.extend(std::iter::repeat_n(false, max_len - e.len()));
        }
        Ok(Batch {
            ids,
            mask,
            batch: texts.len(),
            max_len,
            truncated,
        })
    }
}
