//! Fuzz targets: one per parser of untrusted input, each a plain `fn(&[u8])` that feeds the bytes
//! through the parser and then through what the studio does next with a parsed result (reading
//! every tensor, tokenizing, sampling the tracks). A target must never panic, abort or hang:
//! errors are the expected answer to bad bytes. Driven by `examples/fuzz.rs` (a mutation fuzzer
//! that runs on the stable toolchain); `tests/fuzz_corpus/<target>/` holds the seeds and every
//! crasher found, replayed by the test suite.

use std::path::{Path, PathBuf};

use crate::model::load::{yaml, Checkpoint, Layout};
use crate::model::t5::spm::SpmModel;
use crate::model::t5::tokenizer::TokenizerConfig;
use crate::model::t5::T5Tokenizer;
use crate::trajectory::{point_file, project, reference_canvas_points};

/// A fuzz target: its name (the corpus folder) and the function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What it covers.
    pub about: &'static str,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "pt",
        run: torch_zip,
        about: "torch.save zip container + pickle (model/load/pt.rs), every tensor read",
    },
    Target { name: "safetensors", run: safetensors, about: "safetensors header and data (model/load/checkpoint.rs)" },
    Target { name: "yaml", run: sat_yaml, about: "the YAML subset of SAT configs (model/load/yaml.rs)" },
    Target {
        name: "spm",
        run: spiece_model,
        about: "spiece.model protobuf + charsmap (model/t5/spm.rs), then tokenizing",
    },
    Target {
        name: "project",
        run: project_file,
        about: "project JSON (trajectory/project.rs), then sampling every track",
    },
    Target {
        name: "points",
        run: point_file,
        about: "Tora point files (trajectory/point_file.rs), then reference sampling",
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Where scratch files go: memory (`/dev/shm`) when there is one, since a write per input to a
/// disk-backed folder cut the fuzzer to ~200 inputs per second.
pub fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The checkpoint readers map files, so the bytes go to a scratch file first (one per thread and
/// target, reused).
fn scratch_file(target: &str, bytes: &[u8]) -> Option<PathBuf> {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = scratch_dir().join(format!("tora-fuzz-{}-{thread}-{target}", std::process::id()));
    std::fs::write(&path, bytes).ok()?;
    Some(path)
}

/// Reads every tensor the checkpoint serves, as loading a model would.
fn read_all(ckpt: &Checkpoint) {
    let keys: Vec<String> = ckpt.keys().map(str::to_string).collect();
    for k in &keys {
        let _ = ckpt.shape(k);
        let _ = ckpt.read_f32(k, Layout::AsStored);
        let _ = ckpt.read_i64(k);
    }
}

fn torch_zip(bytes: &[u8]) {
    let Some(path) = scratch_file("pt", bytes) else { return };
    for top in [None, Some("module"), Some("state_dict")] {
        if let Ok(ckpt) = Checkpoint::open_pt(&path, top) {
            read_all(&ckpt);
        }
    }
    let _ = std::fs::remove_file(path);
}

fn safetensors(bytes: &[u8]) {
    let Some(path) = scratch_file("st.safetensors", bytes) else { return };
    if let Ok(ckpt) = Checkpoint::open_file(&path) {
        read_all(&ckpt);
    }
    if let Ok(file) = crate::tensor_file::TensorFile::open(&path) {
        for name in file.names() {
            let _ = file.f32(&name);
            let _ = file.i64(&name);
            let _ = file.u8(&name);
        }
    }
    let _ = std::fs::remove_file(path);
}

fn sat_yaml(bytes: &[u8]) {
    let _ = yaml::parse(&String::from_utf8_lossy(bytes));
}

fn spiece_model(bytes: &[u8]) {
    let Ok(model) = SpmModel::parse(bytes) else { return };
    if let Ok(tokenizer) = T5Tokenizer::from_parts(&model, &TokenizerConfig::default()) {
        let _ = tokenizer.encode("A red ball bounces on the beach, ﬁnally ① Ⅻ 𝔘 ½ naïve", 64);
    }
}

fn project_file(bytes: &[u8]) {
    if let Ok(scene) = project::from_json(Path::new("fuzz.json"), &String::from_utf8_lossy(bytes)) {
        let _ = scene.sample_points();
    }
}

fn point_file(bytes: &[u8]) {
    if let Ok(points) = point_file::parse_points(Path::new("fuzz.txt"), &String::from_utf8_lossy(bytes)) {
        for frames in [2, 16, 49] {
            let _ = reference_canvas_points("fuzz", &points, frames);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mutation

/// A small, seedable PRNG (xorshift64*): the fuzzer must be reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values that break size arithmetic: zero, signs, powers of two, the limits of each width.
const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// One to four stacked mutations of `input` (bit flips, interesting integers at any width, byte
/// runs inserted, deleted, duplicated, spliced from `other`, the tail cut, ASCII digits bumped).
pub fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            2 if len >= 8 => {
                let width = [2usize, 4, 8][rng.below(3)];
                let i = rng.below(len - width + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                out[i..i + width].copy_from_slice(&v[..width]);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(i..i, fill);
            }
            4 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                out.drain(i..i + n);
            }
            5 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = out[i..i + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let i = rng.below(other.len());
                let n = 1 + rng.below((other.len() - i).min(256));
                let at = rng.below(len + 1);
                let end = (at + n).min(len);
                out.splice(at..end, other[i..i + n].iter().copied());
            }
            7 if len > 1 => out.truncate(rng.below(len)),
            8 if len > 0 => {
                // Text formats: make a number bigger, negative or absurd.
                let digits: Vec<usize> = (0..len).filter(|&i| out[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let i = digits[rng.below(digits.len())];
                    const NUMBERS: [&[u8]; 7] =
                        [b"9999999999", b"-1", b"0", b"1e308", b"4294967296", b"400000000", b"65536"];
                    let with = NUMBERS[rng.below(NUMBERS.len())];
                    out.splice(i..i + 1, with.iter().copied());
                }
            }
            _ if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next_u64() as u8;
            }
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out
}

/// A 64-bit FNV-1a hash: names crasher files by their content.
pub fn content_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_reproducible_from_the_seed_and_changes_the_input() {
        let seed = b"{\"format\": \"tora-studio-project\", \"version\": 1}";
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..50).map(|_| mutate(seed, b"other", &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert!(run(7).iter().any(|m| m.as_slice() != seed));
        assert_ne!(run(7), run(8));
    }
}
