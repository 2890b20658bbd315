//! The integration tests, one module per area, linked into ONE test binary.
//!
//! One binary instead of fifteen: every test binary statically links burn, wgpu and egui, so fifteen
//! of them cost ~15 GB of disk and most of CI's link time on a 2-core machine (a CI run died with the
//! linker's SIGBUS when the disk filled). Run one area with `cargo test --test suite vae::`.

mod common;

mod assets;
mod cli_flow;
mod export;
mod faults;
mod flow_gpu;
mod flow_parity;
mod fuzz;
mod opensora;
mod opensora_vae;
mod pipeline;
mod sampling;
mod sat;
mod t5;
mod transformer;
mod ui_drop;
mod ui_generate;
mod ui_layout;
mod ui_queue;
mod ui_regions;
mod ui_snapshots;
mod ui_studio;
mod vae;
