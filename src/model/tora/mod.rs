//! Tora's own parts, shared by both backbones: the Trajectory Extractor (flow latent ->
//! one motion feature map per DiT layer) and the Motion-guidance Fuser (adaptive normalisation
//! that injects those features into the DiT's hidden states).

pub mod mgf;
pub mod trajectory_extractor;

pub use mgf::Mgf;
pub use trajectory_extractor::TrajExtractor;
