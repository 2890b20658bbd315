use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

use crate::verify::{self, Kind};
use crate::Backend;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Fixture folder (default: $TORA_FIXTURES, else ../shared/fixtures).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Only these kinds (comma-separated), e.g. flow,t5,transformer (see the error for all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let kinds = if args.only.is_empty() {
        Kind::ALL.to_vec()
    } else {
        let mut kinds = Vec::new();
        for name in &args.only {
            match Kind::parse(name.trim()) {
                Some(k) => kinds.push(k),
                None => bail!(
                    "unknown check kind {name:?}; known: {}",
                    Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        kinds
    };
    let root = verify::fixtures_root(args.fixtures.as_deref());
    if !root.is_dir() {
        bail!("fixtures folder {} not found; pass --fixtures DIR or set TORA_FIXTURES", root.display());
    }
    let results = verify::run(&root, &kinds, args.backend, |r| println!("{}", r.line()));
    let failed = results.iter().filter(|r| !r.passed).count();
    println!("{} passed, {} failed", results.len() - failed, failed);
    if results.is_empty() {
        eprintln!("error: no fixtures of the selected kinds under {}", root.display());
        return Ok(ExitCode::from(1));
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
