//! What the areas' tests share: where the fixtures are, the CPU device, and a verify run that must
//! find checks and pass them all.

use std::path::{Path, PathBuf};

use tora_studio::model::{ComputeDevice, Precision};
use tora_studio::verify::{self, CheckResult, Kind};
use tora_studio::Backend;

/// `$TORA_FIXTURES`, else `../shared/fixtures` beside the crate.
pub fn fixtures_root() -> PathBuf {
    std::env::var_os("TORA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

pub fn cpu() -> ComputeDevice {
    ComputeDevice::new(Backend::Cpu, Precision::F32).expect("the CPU device always exists")
}

/// `tora-studio verify --only <kinds>` on every fixture on `backend`: prints each line, and fails
/// when no check ran or any failed.
pub fn verify_passes(kinds: &[Kind], backend: Backend) -> Vec<CheckResult> {
    let results = verify::run(&fixtures_root(), kinds, backend, |r| println!("{}", r.line()));
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    assert!(!results.is_empty(), "no {} checks ran", names.join("/"));
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "{} parity failed on {backend:?}:\n{}", names.join("/"), failed.join("\n"));
    results
}
