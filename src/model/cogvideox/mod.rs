//! The CogVideoX-5B backbone Tora's released weights sit on: the transformer (with Tora's TE/MGF)
//! and the 3D causal VAE.
