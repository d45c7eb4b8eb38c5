//! The text encoder as the rest of musicdiff uses it: captions in, token states, mask and
//! sentence vectors out. Mean pooling over real tokens then L2 normalisation, as the
//! sentence-transformers pipeline of all-MiniLM-L6-v2 (`1_Pooling/config.json`).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::bert::{Bert, BertConfig};
use crate::error::{Result, TextError};
use crate::tokenize::WordPiece;

/// all-MiniLM-L6-v2 truncates at 256 tokens (`sentence_bert_config.json`).
pub const MAX_TOKENS: usize = 256;

/// Output of [`TextEncoder::encode`].
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Token states `[B, L, D]`; rows past a caption's length are padding.
    pub tokens: Tensor<3>,
    /// `[B, L]`, true for real tokens.
    pub mask: Tensor<2, Bool>,
    /// Mean-pooled, L2-normalised sentence vectors `[B, D]`.
    pub sentence: Tensor<2>,
    /// Indices of captions cut at [`MAX_TOKENS`].
    pub truncated: Vec<usize>,
}

/// all-MiniLM-L6-v2: tokenizer plus BERT, loaded once.
pub struct TextEncoder {
    tokenizer: WordPiece,
    model: Bert,
    config: BertConfig,
    device: Device,
    dir: PathBuf,
}

fn need(path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(TextError::MissingFile { path })
    }
}

impl TextEncoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = need(dir.join("config.json"))?;
        let weights = need(dir.join("model.safetensors"))?;
        let tokenizer = WordPiece::load(&need(dir.join("tokenizer.json"))?, MAX_TOKENS)?;
        let text = std::fs::read_to_string(&config_path).map_err(|e| TextError::BadFile {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        let config: BertConfig = serde_json::from_str(&text).map_err(|e| TextError::BadFile {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        let mut model = config.init(device);
        let mut store = SafetensorsStore::from_file(&weights)
            .with_from_adapter(PyTorchToBurnAdapter)
            .remap(
                KeyRemapper::new()
                    .add_pattern(r"\.LayerNorm\.", ".layer_norm.")
                    .and_then(|r| r.add_pattern(r"\.attention\.self\.", ".attention.self_attn."))
                    .map_err(|e| TextError::Weights {
                        path: weights.clone(),
                        detail: e.to_string(),
                    })?,
            )
            // The checkpoint also holds the unused pooler and position-id buffer.
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| TextError::Weights {
                path: weights.clone(),
                detail: e.to_string(),
            })?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
            return Err(TextError::Weights {
                path: weights,
                detail: format!(
                    "no values for [{}]; errors: {:?}",
                    missing.join(", "),
                    result.errors
                ),
            });
        }
        Ok(Self {
            tokenizer,
            model,
            config,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Width of token states and sentence vectors (384).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Encodes a batch of captions. An empty caption is allowed (it still has `[CLS]` and
    /// `[SEP]`); captions beyond [`MAX_TOKENS`] tokens are truncated and listed in
    /// [`Encoded::truncated`].
    pub fn encode(&self, texts: &[&str]) -> Result<Encoded> {
        let batch = self.tokenizer.encode_batch(texts)?;
        let (b, l) = (batch.batch, batch.max_len);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(batch.ids, [b, l]), &self.device);
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(batch.mask, [b, l]), &self.device);
        let tokens = self.model.forward(ids, mask.clone());
        // Mean over real tokens: sum(x * m) / sum(m), then L2 normalise.
        let m = mask.clone().float().reshape([b, l, 1]);
        let summed = (tokens.clone() * m.clone())
            .sum_dim(1)
            .reshape([b, self.dim()]);
        let counts = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
        let mean = summed / counts;
        let norm = mean
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        Ok(Encoded {
            tokens,
            mask,
            sentence: mean / norm,
            truncated: batch.truncated,
        })
    }
}
