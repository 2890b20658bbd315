//! The CogVideoX-5B backbone Tora's released weights sit on: the transformer (with Tora's TE/MGF)
//! and the 3D causal VAE.

// 3D causal VAE (issue 6).
pub mod vae;
pub use vae::{AutoencoderKLCogVideoX, LatentDist, Tiling, VaeConfig};
