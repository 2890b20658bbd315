//! `T5Config`, deserialised straight from a transformers `config.json` (unknown fields ignored).

use serde::Deserialize;

/// The fields of transformers' `T5Config` the encoder uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `"gated-gelu"` for v1.1 (`"relu"` for original T5, `"gated-silu"`, ...).
    #[serde(default = "default_ffn")]
    pub feed_forward_proj: String,
    /// The activation (`gelu_new` for v1.1). Derived from `feed_forward_proj` when absent.
    #[serde(default)]
    pub dense_act_fn: Option<String>,
    #[serde(default)]
    pub is_gated_act: Option<bool>,
    /// transformers >= 5 writes `dtype`; older versions `torch_dtype`. Informational only: weights
    /// are converted to the compute dtype whatever they are stored as.
    #[serde(default, alias = "torch_dtype")]
    pub dtype: Option<String>,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ffn() -> String {
    "relu".into()
}

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new`: the tanh approximation, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluNew,
    /// `gelu` (erf form).
    Gelu,
    Relu,
    Silu,
}

impl T5Config {
    /// `(activation, gated)` as transformers derives them from `feed_forward_proj`.
    pub fn feed_forward(&self) -> Result<(Activation, bool), String> {
        let proj = self.feed_forward_proj.as_str();
        let (gated, act) = match proj.split_once('-') {
            Some(("gated", act)) => (true, act),
            None => (false, proj),
            _ => return Err(format!("feed_forward_proj {proj:?} is not `ACT` or `gated-ACT`")),
        };
        // transformers: "gated-gelu" means gelu_new (kept for backwards compatibility).
        let act = if proj == "gated-gelu" { "gelu_new" } else { act };
        let act = self.dense_act_fn.as_deref().unwrap_or(act);
        let activation = match act {
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluNew,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => return Err(format!("activation {other:?} is not supported")),
        };
        Ok((activation, self.is_gated_act.unwrap_or(gated)))
    }

    /// Inner attention width `num_heads · d_kv`.
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.model_type {
            if t != "t5" && t != "umt5" && t != "mt5" {
                return Err(format!("model_type is {t:?}, expected \"t5\""));
            }
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_heads", self.num_heads),
            ("relative_attention_num_buckets", self.relative_attention_num_buckets),
        ] {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.relative_attention_num_buckets < 4 || self.relative_attention_max_distance < 4 {
            return Err("relative_attention_num_buckets and _max_distance must be at least 4".into());
        }
        self.feed_forward().map(|_| ())
    }
}
