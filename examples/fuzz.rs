//! A mutation fuzzer for the parsers of untrusted input, on the stable toolchain (cargo-fuzz
//! needs nightly). Not part of CI: run it by hand for a time or a count per target.
//!
//! ```text
//! cargo run --example fuzz -- all --seconds 120
//! cargo run --example fuzz -- pt --iterations 20000 --seeds ../shared/fixtures/tiny-tora-i2v-sat/vae/3d-vae.pt
//! ```
//!
//! Seeds: every file in `tests/fuzz_corpus/<target>/` plus `--seeds` files. Each input is a seed
//! or a recent mutant, mutated (`tora_studio::fuzz::mutate`). An input that panics is saved as
//! `tests/fuzz_corpus/<target>/crash-<hash>`; one that would abort the process (an allocation over
//! 2 GiB: a declared size trusted before it was checked) is caught by the allocator below, and
//! the input, written to `/dev/shm/tora-fuzz-<target>.current` before every run, is saved as a
//! crasher at the next start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tora_studio::fuzz::{content_hash, mutate, Rng, Target, TARGETS};

/// No parser may ask for this much at once on inputs of a few MB.
const ALLOCATION_LIMIT: usize = 2 << 30;

struct Guarded;

unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            huge(layout.size());
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            huge(layout.size());
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            huge(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Reports without allocating, then aborts: `.current` holds the input.
fn huge(bytes: usize) -> ! {
    let mut msg =
        *b"fuzz: allocation of 0x0000000000000000 bytes: a declared size was trusted; input left in tora-fuzz-<target>.current\n";
    for i in 0..16 {
        let nibble = (bytes >> (60 - 4 * i)) & 0xf;
        msg[22 + i] = b"0123456789abcdef"[nibble];
    }
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

#[global_allocator]
static ALLOC: Guarded = Guarded;

struct Args {
    targets: Vec<&'static Target>,
    seconds: Option<f64>,
    iterations: Option<u64>,
    seed: u64,
    corpus: PathBuf,
    seeds: Vec<PathBuf>,
}

fn usage() -> ! {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    eprintln!(
        "usage: fuzz <{}|all> [--seconds S | --iterations N] [--seed N] [--corpus DIR] [--seeds FILE...]",
        names.join("|")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let which = it.next().unwrap_or_else(|| usage());
    let targets: Vec<&Target> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        vec![tora_studio::fuzz::target(&which).unwrap_or_else(|| usage())]
    };
    let mut args = Args {
        targets,
        seconds: None,
        iterations: None,
        seed: 1,
        corpus: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus"),
        seeds: Vec::new(),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--seconds" => args.seconds = Some(value().parse().unwrap_or_else(|_| usage())),
            "--iterations" => args.iterations = Some(value().parse().unwrap_or_else(|_| usage())),
            "--seed" => args.seed = value().parse().unwrap_or_else(|_| usage()),
            "--corpus" => args.corpus = PathBuf::from(value()),
            "--seeds" => args.seeds.push(PathBuf::from(value())),
            other if !other.starts_with("--") => args.seeds.push(PathBuf::from(other)),
            _ => usage(),
        }
    }
    if args.seconds.is_none() && args.iterations.is_none() {
        args.seconds = Some(60.0);
    }
    args
}

/// Small files of the corpus folder (and the extra seeds), skipping dot files.
fn load_seeds(dir: &Path, extra: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|it| it.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')));
    files.sort();
    files.extend(extra.iter().cloned());
    files
        .iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= 8 << 20))
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn save_crasher(dir: &Path, input: &[u8]) -> PathBuf {
    let path = dir.join(format!("crash-{:016x}", content_hash(input)));
    let _ = std::fs::write(&path, input);
    path
}

fn main() {
    let args = parse_args();
    // Panics are findings, reported once per input below, not printed by the default hook.
    let last_panic: Arc<Mutex<String>> = Arc::default();
    let sink = last_panic.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut s) = sink.lock() {
            *s = info.to_string();
        }
    }));
    let share = args.targets.len() as f64;
    println!("| target | iterations | seconds | crashers found | slowest input (ms) |");
    println!("|---|---|---|---|---|");
    for target in &args.targets {
        let dir = args.corpus.join(target.name);
        let _ = std::fs::create_dir_all(&dir);
        let current = tora_studio::fuzz::scratch_dir().join(format!("tora-fuzz-{}.current", target.name));
        let mut crashers = 0;
        if let Ok(left) = std::fs::read(&current) {
            let saved = save_crasher(&dir, &left);
            eprintln!("{}: the previous run died on an input: saved as {}", target.name, saved.display());
            crashers += 1;
        }
        let seeds = load_seeds(&dir, &args.seeds);
        let seeds = if seeds.is_empty() { vec![Vec::new()] } else { seeds };
        let mut rng = Rng::new(args.seed ^ content_hash(target.name.as_bytes()));
        let mut recent: Vec<Vec<u8>> = Vec::new();
        let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs_f64(s / share));
        let started = Instant::now();
        let (mut n, mut slowest) = (0u64, Duration::ZERO);
        loop {
            if args.iterations.is_some_and(|max| n >= max) || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let base = if !recent.is_empty() && rng.below(2) == 0 {
                &recent[rng.below(recent.len())]
            } else {
                &seeds[rng.below(seeds.len())]
            };
            let other = &seeds[rng.below(seeds.len())];
            let input = mutate(base, other, &mut rng);
            let _ = std::fs::write(&current, &input);
            let t0 = Instant::now();
            let outcome = std::panic::catch_unwind(|| (target.run)(&input));
            slowest = slowest.max(t0.elapsed());
            if outcome.is_err() {
                let saved = save_crasher(&dir, &input);
                let msg = last_panic.lock().map(|s| s.clone()).unwrap_or_default();
                eprintln!("{}: CRASH saved as {}: {msg}", target.name, saved.display());
                crashers += 1;
            }
            if recent.len() < 256 {
                recent.push(input);
            } else {
                let i = rng.below(recent.len());
                recent[i] = input;
            }
            n += 1;
        }
        let _ = std::fs::remove_file(&current);
        println!(
            "| {} | {n} | {:.0} | {crashers} | {:.1} |",
            target.name,
            started.elapsed().as_secs_f64(),
            slowest.as_secs_f64() * 1e3
        );
    }
}
