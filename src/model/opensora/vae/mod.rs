//! OpenSora VAE v1.2 (`VideoAutoencoderPipeline`): a diffusers `AutoencoderKL` (SDXL-style, 8×
//! space) applied frame by frame, followed by OpenSora's causal temporal VAE (4× time), with
//! micro-batching in both and a per-channel `(z − shift)/scale` normalisation of the latents.
//!
//! ```text
//! encode: video [B,3,T,H,W] ─ 2D encode, micro-batches of frames ─► x_z [B,4,T,H/8,W/8] (·0.18215)
//!         ─ temporal encode, micro chunks of frames ─► z [B,4,T',H/8,W/8] ─► (z − shift)/scale
//! decode: z·scale + shift ─ temporal decode per latent chunk ─► x_z ─ 2D decode (/0.18215) ─► video
//! ```
//!
//! Parts, one per file: [`config`], [`layers`] (conv, GroupNorm), the 2D VAE ([`resnet2d`],
//! [`resample2d`], [`mid_block`], [`encoder2d`], [`decoder2d`], [`autoencoder_kl`]), the temporal
//! VAE ([`causal_conv`], [`temporal`]), the shared posterior ([`gaussian`]) and the wrapper
//! ([`pipeline`]).

pub mod autoencoder_kl;
pub mod causal_conv;
pub mod config;
pub mod decoder2d;
pub mod encoder2d;
pub mod gaussian;
pub mod layers;
pub mod mid_block;
pub mod pipeline;
pub mod resample2d;
pub mod resnet2d;
pub mod temporal;

pub use config::{AutoencoderKlConfig, OpenSoraVaeConfig, SPATIAL_SCALING_FACTOR};
pub use pipeline::{DecodeTrace, EncodeTrace, OpenSoraVae};

/// Why an encode or decode call was refused (the inputs do not fit the model).
#[derive(Debug, thiserror::Error)]
pub enum OpenSoraVaeError {
    #[error("OpenSora VAE: {0}")]
    Input(String),
    #[error("OpenSora VAE: noise draw {index} for shape {shape:?} returned {got} values, expected {expected}")]
    Noise { index: usize, shape: Vec<usize>, got: usize, expected: usize },
}
