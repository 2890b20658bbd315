//! `tora-studio devices`: what this build and this machine offer, the device a run would use, and
//! (unless `--no-open`) whether it opens and computes.

use clap::Args;

use crate::model::device::{shader_language, wgpu_adapters, DeviceChoice, SPIRV_BUILD, TUNED_BUILD};
use crate::model::Precision;
use crate::Backend;

#[derive(Args)]
pub struct DevicesArgs {
    /// The backend a run would be given (default: the best GPU when wgpu finds one, else cpu).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// The precision a run would be given (default: f16 on a GPU, else f32).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Only list and choose; do not open the device.
    #[arg(long)]
    no_open: bool,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    println!(
        "build: {} kernels on Vulkan, WGSL elsewhere; burn autotune + fusion {}",
        if SPIRV_BUILD { "SPIR-V" } else { "WGSL" },
        if TUNED_BUILD { "on" } else { "off" }
    );
    let adapters = if args.backend == Some(Backend::Cpu) { Vec::new() } else { wgpu_adapters() };
    for adapter in &adapters {
        println!("adapter: {} -> {} kernels", adapter.describe(), shader_language(adapter, SPIRV_BUILD));
    }
    if args.no_open {
        println!("{}", DeviceChoice::choose(&adapters, args.backend, args.precision).line());
        return Ok(());
    }
    let (_device, choice) = super::open_device(args.backend, args.precision)?;
    println!("{}", choice.line());
    println!("opened: a test computation ran and read back correctly");
    Ok(())
}
