//! The CogVideoX-5B backbone Tora's released weights sit on: the transformer (with Tora's TE/MGF)
//! and the 3D causal VAE.

// The transformer (issue 5).
pub mod config;
pub mod embeddings;
pub mod layers;
pub mod rope;
pub mod transformer;

pub use config::TransformerConfig;
pub use rope::RotaryEmbedding;
pub use transformer::ToraTransformer3D;

// 3D causal VAE (issue 6).
pub mod vae;
pub use vae::{AutoencoderKLCogVideoX, LatentDist, Tiling, VaeConfig};

// Which files a model folder holds (diffusers or Tora's SAT tree) and loading each part from them.
pub mod source;
pub use source::ModelSource;
