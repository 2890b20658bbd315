//! Tora's own parts, shared by both backbones: the Trajectory Extractor (flow latent ->
//! one motion feature map per DiT layer), the Motion-guidance Fuser (adaptive normalisation
//! that injects those features into the DiT's hidden states) and the per-run cache of the
//! extractor's features.

pub mod guidance;
pub mod mgf;
pub mod trajectory_extractor;

pub use guidance::FlowFeatures;
pub use mgf::Mgf;
pub use trajectory_extractor::TrajExtractor;
