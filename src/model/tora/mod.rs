//! Tora's own parts, shared by both backbones: the Trajectory Extractor (flow latent ->
//! one motion feature map per DiT layer) and the Motion-guidance Fuser (adaptive normalisation
//! that injects those features into the DiT's hidden states).
