//! T5 v1.1 text encoder (CogVideoX / Tora text condition): SentencePiece tokenizer + encoder.

pub mod config;
pub mod encoder;
pub mod spm;
pub mod tokenizer;

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};

pub use config::T5Config;
pub use encoder::T5EncoderModel;
pub use tokenizer::{Encoding, T5Tokenizer};

use crate::model::device::ComputeDevice;
use crate::model::load::LoadError;

/// CogVideoX's `max_sequence_length`: prompts are padded/truncated to 226 tokens.
pub const COGVIDEOX_MAX_SEQUENCE_LENGTH: usize = 226;

/// Tokenizer + encoder, as the pipeline's `_get_t5_prompt_embeds` uses them.
pub struct T5TextEncoder {
    pub tokenizer: T5Tokenizer,
    pub model: T5EncoderModel,
    pub config: T5Config,
    pub device: ComputeDevice,
}

impl T5TextEncoder {
    /// `dir`: a pipeline folder (with `text_encoder/` and `tokenizer/`), or a folder holding the
    /// encoder weights, `config.json` and (there or in `../tokenizer/`) `spiece.model`.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<Self, LoadError> {
        let tokenizer = T5Tokenizer::load(&T5Tokenizer::find_dir(dir)?)?;
        let (model, config) = T5EncoderModel::load(dir, device)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(LoadError::Config {
                path: dir.into(),
                reason: format!(
                    "the tokenizer has {} tokens but the encoder's vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        Ok(T5TextEncoder { tokenizer, model, config, device: device.clone() })
    }

    /// Ids as an `[batch, tokens]` int tensor.
    pub fn ids_tensor(&self, ids: &[Vec<i64>]) -> Tensor<2, Int> {
        let (b, l) = (ids.len(), ids.first().map_or(0, Vec::len));
        let flat: Vec<i64> = ids.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [b, l]), self.device.device())
    }

    /// `last_hidden_state` `[batch, tokens, d_model]` of the given ids; with `mask` the padding
    /// is masked out (the CogVideoX pipeline does not pass the mask).
    pub fn encode_ids(&self, ids: &[Vec<i64>], mask: Option<&[Vec<i64>]>) -> Tensor<3> {
        let mask = mask.map(|m| {
            let (b, l) = (m.len(), m.first().map_or(0, Vec::len));
            let flat: Vec<f32> = m.iter().flatten().map(|&v| v as f32).collect();
            Tensor::<2>::from_data(TensorData::new(flat, [b, l]), (self.device.device(), burn::tensor::DType::F32))
        });
        self.model.forward(self.ids_tensor(ids), mask, &self.device)
    }

    /// Tokenizes and encodes a batch of prompts the way CogVideoX does (no attention mask).
    pub fn encode_prompts<S: AsRef<str>>(&self, prompts: &[S], max_length: usize) -> (Encoding, Tensor<3>) {
        let enc = self.tokenizer.encode_batch(prompts, max_length);
        let hidden = self.encode_ids(&enc.input_ids, None);
        (enc, hidden)
    }
}
