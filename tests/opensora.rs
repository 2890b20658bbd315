//! OpenSora 1.2 backbone: STDiT3 and rectified-flow parity over every `*/io/stdit3*` and
//! `*/io/rflow*` fixture (cpu, wgpu), and Tora's TE/MGF on STDiT3 (identity when
//! zero-initialised, trajectory-dependent with random weights).

use std::path::{Path, PathBuf};

use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

fn fixtures_root() -> PathBuf {
    std::env::var_os("TORA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

/// Every io file `<model>/io/<prefix>*.safetensors` under the fixtures root.
fn io_files(prefix: &str) -> Vec<PathBuf> {
    let root = fixtures_root();
    let files: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .collect();
    if files.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no */io/{prefix}*.safetensors fixtures under {}: OpenSora {prefix} tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    files
}

fn run_verify(kind: Kind, prefix: &str, backend: Backend) {
    if io_files(prefix).is_empty() {
        return;
    }
    let results = verify::run(&fixtures_root(), &[kind], backend, |r| println!("{}", r.line()));
    assert!(!results.is_empty(), "no {} checks ran", kind.name());
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "{} parity failed on {backend:?}:\n{}", kind.name(), failed.join("\n"));
}

#[test]
fn verify_stdit3_cpu() {
    run_verify(Kind::Stdit3, "stdit3", Backend::Cpu);
}

#[test]
fn verify_stdit3_wgpu() {
    run_verify(Kind::Stdit3, "stdit3", Backend::Wgpu);
}

#[test]
fn verify_rflow_cpu() {
    run_verify(Kind::Rflow, "rflow", Backend::Cpu);
}

#[test]
fn verify_rflow_wgpu() {
    run_verify(Kind::Rflow, "rflow", Backend::Wgpu);
}
