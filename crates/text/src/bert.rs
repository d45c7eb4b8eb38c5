//! BERT encoder (Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
//! Language Understanding", NAACL 2019) in burn, laid out so that module paths follow the
//! Hugging Face checkpoint keys (`encoder.layer.N.attention.self.query`, ...) up to two renames
//! done at load time (`LayerNorm` -> `layer_norm`, `attention.self` -> `attention.self_attn`).
//! Post-norm residual blocks, exact (erf) GELU, learned absolute positions.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use serde::Deserialize;

/// The fields of a Hugging Face BERT `config.json` that the architecture needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// Builds a randomly initialised model (weights are loaded over it).
    pub fn init(&self, device: &Device) -> Bert {
        let ln = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let d = self.hidden_size;
        Bert {
            embeddings: Embeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
                layer_norm: ln(),
            },
            encoder: Encoder {
                layer: (0..self.num_hidden_layers)
                    .map(|_| Layer {
                        attention: Attention {
                            self_attn: SelfAttention {
                                query: lin(d, d),
                                key: lin(d, d),
                                value: lin(d, d),
                                n_heads: self.num_attention_heads,
                            },
                            output: DenseNorm {
                                dense: lin(d, d),
                                layer_norm: ln(),
                            },
                        },
                        intermediate: Dense {
                            dense: lin(d, self.intermediate_size),
                        },
                        output: DenseNorm {
                            dense: lin(self.intermediate_size, d),
                            layer_norm: ln(),
                        },
                    })
                    .collect(),
            },
        }
    }
}

/// Token, position and segment embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
}

/// Multi-head scaled dot-product self-attention projections.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    #[module(skip)]
    pub n_heads: usize,
}

/// A linear layer followed by a residual connection and layer norm.
#[derive(Module, Debug)]
pub struct DenseNorm {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

/// A linear layer (the feed-forward expansion).
#[derive(Module, Debug)]
pub struct Dense {
    pub dense: Linear,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub self_attn: SelfAttention,
    pub output: DenseNorm,
}

/// One transformer block: attention, then the feed-forward network, each post-normalised.
#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Dense,
    pub output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<Layer>,
}

/// The BERT encoder without its pooler (sentence vectors come from mean pooling).
#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
}

impl SelfAttention {
    /// `x [B, L, D]`, `pad [B, H, L, L]` (true = masked key) -> context `[B, L, D]`.
    fn forward(&self, x: Tensor<3>, pad: Tensor<4, Bool>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let h = self.n_heads;
        // [B, L, D] -> [B, H, L, D/H]
        let heads = |t: Tensor<3>| t.reshape([b, l, h, d / h]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let ctx = attention(q, k, v, Some(pad), None, AttentionModuleOptions::default());
        // [B, H, L, D/H] -> [B, L, D]
        ctx.swap_dims(1, 2).reshape([b, l, d])
    }
}

impl Layer {
    fn forward(&self, x: Tensor<3>, pad: Tensor<4, Bool>) -> Tensor<3> {
        let ctx = self.attention.self_attn.forward(x.clone(), pad);
        let o = &self.attention.output;
        let x = o.layer_norm.forward(x + o.dense.forward(ctx));
        let hidden = gelu(self.intermediate.dense.forward(x.clone()));
        let o = &self.output;
        o.layer_norm.forward(x + o.dense.forward(hidden))
    }
}

impl Bert {
    /// `ids [B, L]`, `valid [B, L]` (true for real tokens) -> token states `[B, L, D]`.
    pub fn forward(&self, ids: Tensor<2, Int>, valid: Tensor<2, Bool>) -> Tensor<3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let segments = Tensor::<2, Int>::zeros([b, l], &device);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(segments);
        let mut x = e.layer_norm.forward(x);
        let h = self
            .encoder
            .layer
            .first()
            .map_or(1, |layer| layer.attention.self_attn.n_heads);
        // Keys that are padding are masked for every head and query: [B, H, L, L].
        let pad = valid.bool_not().reshape([b, 1, 1, l]).expand([b, h, l, l]);
        for layer in &self.encoder.layer {
            x = layer.forward(x, pad.clone());
        }
        x
    }
}
