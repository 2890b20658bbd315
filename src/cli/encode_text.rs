//! `tora-studio encode-text`: prompt -> T5 ids, mask and `prompt_embeds`, written as safetensors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use safetensors::Dtype;

use crate::model::cogvideox::ModelSource;
use crate::model::t5::COGVIDEOX_MAX_SEQUENCE_LENGTH;
use crate::model::Precision;
use crate::tensor_file::{write_tensors, OutTensor};
use crate::Backend;

#[derive(clap::Args)]
pub struct EncodeTextArgs {
    /// Pipeline folder (with text_encoder/ and tokenizer/) or the text encoder folder itself.
    #[arg(long)]
    model: PathBuf,
    /// Prompt(s); repeat for a batch.
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// Compute backend (default: the best GPU when wgpu finds one, else cpu).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Compute precision (f16 on wgpu only; norms and softmax stay f32; default: f16 on a GPU, else f32).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Tokens per prompt after truncation/padding (CogVideoX: 226).
    #[arg(long, default_value_t = COGVIDEOX_MAX_SEQUENCE_LENGTH)]
    max_length: usize,
    /// Also mask padding tokens (the CogVideoX pipeline does not).
    #[arg(long)]
    masked: bool,
    /// Output file: input_ids [B,L] i64, attention_mask [B,L] i64, prompt_embeds [B,L,d] f32.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: EncodeTextArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.max_length > 0, "--max-length must be positive");
    let (device, _) = super::open_device(args.backend, args.precision)?;
    let t0 = Instant::now();
    let encoder = ModelSource::open(&args.model)
        .and_then(|source| source.load_t5(&device))
        .with_context(|| format!("loading the T5 text encoder from {}", args.model.display()))?;
    let loaded = t0.elapsed();
    let t1 = Instant::now();
    let enc = encoder.tokenizer.encode_batch(&args.prompt, args.max_length);
    let hidden = encoder.encode_ids(&enc.input_ids, args.masked.then_some(enc.attention_mask.as_slice()));
    let dims = hidden.dims();
    let values: Vec<f32> = hidden
        .cast(burn::tensor::DType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the embeddings back: {e:?}"))?;
    let encoded = t1.elapsed();
    let (b, l) = (enc.input_ids.len(), args.max_length);
    let i64_tensor = |name: &str, rows: &[Vec<i64>]| OutTensor {
        name: name.into(),
        dtype: Dtype::I64,
        shape: vec![b, l],
        bytes: rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let tensors = vec![
        i64_tensor("input_ids", &enc.input_ids),
        i64_tensor("attention_mask", &enc.attention_mask),
        OutTensor::f32("prompt_embeds", dims.to_vec(), &values),
    ];
    let mut meta = HashMap::new();
    meta.insert("producer".to_string(), "tora-studio encode-text".to_string());
    meta.insert("prompts".to_string(), serde_json::to_string(&args.prompt)?);
    meta.insert("untruncated_lengths".to_string(), serde_json::to_string(&enc.untruncated_lengths)?);
    meta.insert("max_length".to_string(), args.max_length.to_string());
    meta.insert("masked".to_string(), args.masked.to_string());
    meta.insert("backend".to_string(), crate::model::device::backend_name(device.backend()).to_string());
    meta.insert("precision".to_string(), device.precision().name().to_string());
    write_tensors(&args.out, &tensors, meta)?;
    for (p, n) in args.prompt.iter().zip(&enc.untruncated_lengths) {
        if *n > args.max_length {
            eprintln!("warning: prompt of {n} tokens truncated to {} ({:.40}...)", args.max_length, p);
        }
    }
    println!(
        "wrote {} (prompt_embeds {:?}; load {:.2}s, encode {:.2}s, {} {})",
        args.out.display(),
        dims,
        loaded.as_secs_f64(),
        encoded.as_secs_f64(),
        crate::model::device::backend_name(device.backend()),
        device.precision().name()
    );
    Ok(())
}
