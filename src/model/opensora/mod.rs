//! The paper's own backbone: OpenSora 1.2 (STDiT3 + VAE v1.2), with Tora's TE/MGF.
pub mod vae;
