//! Samplers: CogVideoX's DPM and DDIM schedulers, rectified flow, classifier-free guidance, and the
//! injectable noise source every random draw goes through.

// OpenSora 1.2's rectified flow (transformer/OpenSora helper).
pub mod rflow;
