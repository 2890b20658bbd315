//! Parity checks against the reference fixtures: discovery, one checker per kind, and the
//! `PASS|FAIL kind case max_abs_err tolerance` report used by `tora-studio verify` and the tests.

mod flow;
pub use flow::FlowCase;
mod opensora;
pub mod opensora_vae;
mod pipeline;
mod scheduler;
mod t5;
mod transformer;
mod vae;

use std::path::{Path, PathBuf};

use crate::model::cogvideox::ModelSource;
use crate::model::load::model_folder::SatTree;
use crate::model::{ComputeDevice, Precision};
use crate::Backend;

/// Each kind of parity check (one or more per model part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Flow,
    T5,
    TrajExtractor,
    Mgf,
    Transformer,
    VaeEncode,
    VaeDecode,
    Scheduler,
    Pipeline,
    Stdit3,
    OpensoraVaeEncode,
    OpensoraVaeDecode,
    Rflow,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Flow,
        Kind::T5,
        Kind::TrajExtractor,
        Kind::Mgf,
        Kind::Transformer,
        Kind::VaeEncode,
        Kind::VaeDecode,
        Kind::Scheduler,
        Kind::Pipeline,
        Kind::Stdit3,
        Kind::OpensoraVaeEncode,
        Kind::OpensoraVaeDecode,
        Kind::Rflow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Flow => "flow",
            Kind::T5 => "t5",
            Kind::TrajExtractor => "traj_extractor",
            Kind::Mgf => "mgf",
            Kind::Transformer => "transformer",
            Kind::VaeEncode => "vae_encode",
            Kind::VaeDecode => "vae_decode",
            Kind::Scheduler => "scheduler",
            Kind::Pipeline => "pipeline",
            Kind::Stdit3 => "stdit3",
            Kind::OpensoraVaeEncode => "opensora_vae_encode",
            Kind::OpensoraVaeDecode => "opensora_vae_decode",
            Kind::Rflow => "rflow",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub kind: Kind,
    pub case: String,
    pub passed: bool,
    pub max_abs_err: f64,
    pub tolerance: f64,
    /// Extra words for a failure (where it differs).
    pub note: String,
}

impl CheckResult {
    pub fn compare(kind: Kind, case: impl Into<String>, max_abs_err: f64, tolerance: f64) -> Self {
        CheckResult {
            kind,
            case: case.into(),
            passed: max_abs_err <= tolerance,
            max_abs_err,
            tolerance,
            note: String::new(),
        }
    }

    pub fn failed(kind: Kind, case: impl Into<String>, note: impl Into<String>) -> Self {
        CheckResult { kind, case: case.into(), passed: false, max_abs_err: f64::NAN, tolerance: 0.0, note: note.into() }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The report line: `PASS|FAIL kind case max_abs_err tolerance [note]`.
    pub fn line(&self) -> String {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let mut line =
            format!("{verdict} {} {} {:.3e} {:.3e}", self.kind.name(), self.case, self.max_abs_err, self.tolerance);
        if !self.note.is_empty() {
            line.push_str("  # ");
            line.push_str(&self.note);
        }
        line
    }
}

/// Where fixtures are looked for: the given folder, else `$TORA_FIXTURES`, else `../shared/fixtures`.
pub fn fixtures_root(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TORA_FIXTURES").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures"))
}

/// Prints a warning straight to the process's stderr, past the test harness's output capture,
/// so a skipped parity check shows in every test log (e.g. when the fixtures are missing).
pub fn say_loudly(message: &str) {
    use std::io::Write;
    let bar = "!".repeat(78);
    let _ = writeln!(std::io::stderr().lock(), "\n{bar}\n!!! {message}\n{bar}\n");
}

/// Every file under `root` (recursively, sorted), for the checkers to pick theirs from.
pub fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs every check of the selected kinds found under `root`, calling `report` as each finishes.
pub fn run(root: &Path, kinds: &[Kind], backend: Backend, mut report: impl FnMut(&CheckResult)) -> Vec<CheckResult> {
    let files = walk_files(root);
    let mut results = Vec::new();
    for &kind in kinds {
        let mut sink = |r: CheckResult| {
            report(&r);
            results.push(r);
        };
        match kind {
            Kind::Flow => flow::run(root, &files, backend, &mut sink),
            Kind::T5 => t5::run(root, &files, backend, &mut sink),
            Kind::TrajExtractor | Kind::Mgf | Kind::Transformer => {
                transformer::run(kind, root, &files, backend, &mut sink)
            }
            Kind::VaeEncode | Kind::VaeDecode => vae::run(kind, root, &files, backend, &mut sink),
            Kind::Scheduler => scheduler::run(root, &files, backend, &mut sink),
            Kind::Pipeline => pipeline::run(root, &files, backend, &mut sink),
            Kind::Stdit3 | Kind::OpensoraVaeEncode | Kind::OpensoraVaeDecode | Kind::Rflow => {
                opensora::run(kind, root, &files, backend, &mut sink)
            }
        }
    }
    results
}

/// Case name relative to the fixtures root, without extension.
fn case_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

/// Largest absolute difference between two equally long sequences.
pub fn max_abs_diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &[A], b: &[B]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(&x, &y)| (x.into() - y.into()).abs()).fold(0.0, |m, d| {
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    })
}

/// One io fixture file and the model folder it is replayed on.
pub(crate) struct ModelCase {
    /// The report's case name.
    pub case: String,
    /// The fixture file (inputs and reference outputs).
    pub io: PathBuf,
    pub source: ModelSource,
}

/// `<model>/<io_dir>/<file>` beside a model folder `accept` takes: what an io fixture file is.
fn io_model_dir<'p>(path: &'p Path, io_dir: &str, file: &str) -> Option<&'p Path> {
    let in_io = path.file_name().is_some_and(|n| n == file)
        && path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == io_dir);
    in_io.then(|| path.parent().and_then(Path::parent)).flatten()
}

/// Tora's SAT trees under the fixtures root: folders holding `tora/<variant>/mp_rank_00_model_states.pt`
/// or `vae/3d-vae.pt`.
fn sat_trees(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = files
        .iter()
        .filter_map(|p| match p.file_name()?.to_str()? {
            "mp_rank_00_model_states.pt" => {
                let tora = p.parent()?.parent()?;
                (tora.file_name()? == "tora").then(|| tora.parent()).flatten()
            }
            "3d-vae.pt" => {
                let vae = p.parent()?;
                (vae.file_name()? == "vae").then(|| vae.parent()).flatten()
            }
            _ => None,
        })
        .map(Path::to_path_buf)
        .filter(|root| SatTree::looks_like(root))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// The cases of one io file name for the CogVideoX-Tora family:
/// - every `<model>/io/<file>` whose model folder `accept`s, run on that diffusers folder;
/// - for every SAT tree whose `manifest.json` names a diffusers twin holding such a file, the twin's
///   file replayed through the SAT tree's own files with diffusers semantics (same weights, same
///   numerics: the check that the SAT loader serves every tensor right), as case `<sat>/io/<stem>`.
pub(crate) fn cogvideox_cases(
    root: &Path,
    files: &[PathBuf],
    file: &str,
    accept: impl Fn(&Path) -> bool,
) -> Vec<ModelCase> {
    let mut cases: Vec<ModelCase> = files
        .iter()
        .filter_map(|p| {
            let model = io_model_dir(p, "io", file).filter(|m| accept(m))?;
            let source = ModelSource::Diffusers { root: model.to_path_buf() };
            Some(ModelCase { case: case_name(root, p), io: p.clone(), source })
        })
        .collect();
    for sat in sat_trees(files) {
        let Ok(tree) = SatTree::find(&sat) else { continue };
        let Some(twin) = tree.diffusers_twin() else { continue };
        let io = twin.join("io").join(file);
        if !io.is_file() || !accept(&twin) {
            continue;
        }
        let Ok(source) = ModelSource::open(&sat) else { continue };
        let case = case_name(root, &sat.join("io").join(file));
        cases.push(ModelCase { case, io, source: source.with_diffusers_semantics() });
    }
    cases
}

/// `<sat>/io_sat/<file>`: outputs of Tora's own SAT code, replayed on the SAT tree with SAT semantics.
pub(crate) fn sat_semantics_cases(root: &Path, files: &[PathBuf], file: &str) -> Vec<ModelCase> {
    files
        .iter()
        .filter_map(|p| {
            let sat = io_model_dir(p, "io_sat", file).filter(|d| SatTree::looks_like(d))?;
            let source = ModelSource::open(sat).ok()?;
            Some(ModelCase { case: case_name(root, p), io: p.clone(), source })
        })
        .collect()
}

/// What [`run_cases`] needs of a case: the name its report lines carry.
pub(crate) trait NamedCase {
    fn case_name(&self) -> &str;
}

impl NamedCase for ModelCase {
    fn case_name(&self) -> &str {
        &self.case
    }
}

/// A fixture file and its report name (checkers that find their model folder themselves).
pub(crate) struct FileCase {
    pub case: String,
    pub path: PathBuf,
}

impl FileCase {
    pub fn new(root: &Path, path: &Path) -> Self {
        FileCase { case: case_name(root, path), path: path.to_path_buf() }
    }
}

impl NamedCase for FileCase {
    fn case_name(&self) -> &str {
        &self.case
    }
}

/// Opens the f32 device once and runs `check` on every case; an error or a panic inside a case
/// becomes that case's FAIL line instead of ending the run.
pub(crate) fn run_cases<C: NamedCase>(
    kind: Kind,
    cases: &[C],
    backend: Backend,
    report: &mut dyn FnMut(CheckResult),
    mut check: impl FnMut(&C, &ComputeDevice, &mut dyn FnMut(CheckResult)) -> Result<(), String>,
) {
    if cases.is_empty() {
        return;
    }
    let device = match ComputeDevice::new(backend, Precision::F32) {
        Ok(d) => d,
        Err(e) => {
            for c in cases {
                report(CheckResult::failed(kind, c.case_name().to_string(), e.to_string()));
            }
            return;
        }
    };
    for c in cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(c, &device, &mut *report)));
        let name = || c.case_name().to_string();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report(CheckResult::failed(kind, name(), e)),
            Err(_) => report(CheckResult::failed(kind, name(), "the check panicked (see stderr)")),
        }
    }
}

/// A SAT-layout case says so in its report lines.
pub(crate) fn layout_note(source: &ModelSource) -> String {
    match source {
        ModelSource::Diffusers { .. } => String::new(),
        ModelSource::Sat { semantics, .. } => {
            let how = if semantics.add_learned_pos_embedding { "diffusers semantics" } else { "SAT semantics" };
            format!("; SAT files, {how}")
        }
    }
}
