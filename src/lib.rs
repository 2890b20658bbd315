//! Tora Studio: draw, time and preview motion trajectories, and turn them into video with Tora.
//!
//! Data flows one way: [`trajectory`] (pure data) -> [`flow`] (the motion field) -> model ->
//! pipeline -> [`export`]. [`app`] is the egui studio, [`cli`] the same library calls headless,
//! [`verify`] the parity checks against the reference fixtures.

pub mod app;
pub mod cli;
pub mod disk;
pub mod export;
pub mod flow;
pub mod fuzz;
pub mod model;
pub mod pipeline;
pub mod sampling;
pub mod tensor_file;
pub mod trajectory;
pub mod verify;

/// Where numerics run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// The CPU reference path.
    #[default]
    Cpu,
    /// wgpu (Vulkan / Metal / DX12; mesa's lavapipe as a software device).
    Wgpu,
}
