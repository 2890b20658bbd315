//! The paper's own backbone: OpenSora 1.2 (STDiT3 + VAE v1.2), with Tora's TE/MGF.
//!
//! - [`config`]: `Stdit3Config` from the real `config.json`;
//! - [`embeddings`], [`blocks`], [`stdit3`]: the Spatial-Temporal DiT;
//! - [`tora`]: Tora's Trajectory Extractor and Motion-guidance Fuser wired into STDiT3's
//!   temporal blocks.

// STDiT3 + Tora wiring (transformer helper).
pub mod blocks;
pub mod config;
pub mod embeddings;
pub mod stdit3;
pub mod tora;

pub use config::Stdit3Config;
pub use stdit3::Stdit3;

// OpenSora VAE v1.2 (2D spatial VAE + temporal VAE).
pub mod vae;
