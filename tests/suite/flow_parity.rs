//! The CPU motion field against every reference flow fixture under `$TORA_FIXTURES`
//! (default `../shared/fixtures`), through the same checks as `tora-studio verify --only flow`.

use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

#[test]
fn cpu_flow_matches_every_reference_fixture() {
    let root = verify::fixtures_root(None);
    if !root.is_dir() {
        tora_studio::verify::say_loudly(&format!(
            "FIXTURES MISSING: {} not found; set TORA_FIXTURES. Flow parity NOT checked.",
            root.display()
        ));
        return;
    }
    let results = verify::run(&root, &[Kind::Flow], Backend::Cpu, |r| eprintln!("{}", r.line()));
    assert!(!results.is_empty(), "no flow fixtures found under {}", root.display());
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "flow parity failures:\n{}", failed.join("\n"));
}
