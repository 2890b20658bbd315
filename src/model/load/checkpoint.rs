//! Safetensors checkpoints: one file or a sharded set described by `*.safetensors.index.json`.
//!
//! Every shard is memory-mapped; a tensor is read from the mapping, converted (bf16/f16/f64 ->
//! f32, optionally transposed) into one host buffer, handed to the device, and its mapped pages
//! are dropped from the process (`MADV_DONTNEED`). So loading holds the model once, plus one
//! tensor in flight — never the file and the model together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::{LoadError, ShapeMismatch};
use crate::model::device::ComputeDevice;

/// How a stored tensor is handed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As stored.
    AsStored,
    /// A 2-D PyTorch `nn.Linear` weight `[out, in]` delivered as burn's `[in, out]`.
    Transposed,
}

struct Shard {
    path: PathBuf,
    mmap: Mmap,
}

#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range of the data inside the shard's mapping.
    start: usize,
    len: usize,
}

/// An opened (memory-mapped, validated) checkpoint. Reading a tensor never reads the others.
pub struct Checkpoint {
    /// The index file or the single file: what errors about the whole set name.
    source: PathBuf,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Opens a sharded checkpoint from its `*.safetensors.index.json`.
    pub fn open_index(index_path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(index_path).map_err(|e| LoadError::io(index_path, e))?;
        let index: IndexFile = serde_json::from_str(&text).map_err(|e| LoadError::Config {
            path: index_path.into(),
            reason: format!("not a safetensors index ({e})"),
        })?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        // Shards in first-seen order of the (sorted) weight map; keys per shard.
        let mut shard_names: Vec<String> = Vec::new();
        let mut keys_of: HashMap<String, Vec<String>> = HashMap::new();
        for (key, shard) in &index.weight_map {
            if shard.contains('/') || shard.contains('\\') || shard == ".." {
                return Err(LoadError::Config {
                    path: index_path.into(),
                    reason: format!("shard name {shard:?} is not a plain file name"),
                });
            }
            if !keys_of.contains_key(shard) {
                shard_names.push(shard.clone());
            }
            keys_of.entry(shard.clone()).or_default().push(key.clone());
        }
        shard_names.sort();
        let mut ckpt = Checkpoint { source: index_path.into(), shards: Vec::new(), tensors: BTreeMap::new() };
        for name in &shard_names {
            let path = dir.join(name);
            let keys = &keys_of[name];
            if !path.exists() {
                return Err(LoadError::MissingShard {
                    index: index_path.into(),
                    shard: name.clone(),
                    path,
                    keys: keys.len(),
                    example: keys.first().cloned().unwrap_or_default(),
                });
            }
            let shard_idx = ckpt.add_shard(&path)?;
            for key in keys {
                match ckpt.tensors.get(key) {
                    Some(e) if e.shard == shard_idx => {}
                    _ => {
                        return Err(LoadError::IndexMismatch {
                            index: index_path.into(),
                            shard: path.clone(),
                            key: key.clone(),
                        })
                    }
                }
            }
        }
        // Tensors a shard holds beyond what the index lists still count (as unexpected if unused).
        Ok(ckpt)
    }

    /// Opens one `.safetensors` file.
    pub fn open_file(path: &Path) -> Result<Self, LoadError> {
        let mut ckpt = Checkpoint { source: path.into(), shards: Vec::new(), tensors: BTreeMap::new() };
        ckpt.add_shard(path)?;
        Ok(ckpt)
    }

    /// Opens the weights of a component folder: an index (`*.safetensors.index.json`) if there is
    /// one, else the single `*.safetensors` file. Pickle-only folders are refused.
    pub fn open_dir(dir: &Path) -> Result<Self, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let pick = |cands: Vec<&String>, what: &str| -> Result<Option<PathBuf>, LoadError> {
            // Prefer the canonical transformers / diffusers names when several variants exist.
            let preferred = ["model", "diffusion_pytorch_model"];
            match cands.len() {
                0 => Ok(None),
                1 => Ok(Some(dir.join(cands[0]))),
                _ => {
                    for p in preferred {
                        if let Some(c) = cands.iter().find(|c| c.starts_with(&format!("{p}.safetensors"))) {
                            return Ok(Some(dir.join(c)));
                        }
                    }
                    Err(LoadError::Unsupported {
                        path: dir.into(),
                        reason: format!(
                            "several {what} files ({}); keep one variant",
                            cands.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    })
                }
            }
        };
        let indexes: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors.index.json")).collect();
        if let Some(index) = pick(indexes, "safetensors index")? {
            return Checkpoint::open_index(&index);
        }
        let singles: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors")).collect();
        let sharded_pattern = singles.iter().any(|n| n.contains("-of-"));
        if sharded_pattern {
            return Err(LoadError::NotFound {
                path: dir.join("model.safetensors.index.json"),
                hint: " (the folder holds sharded weights but no *.safetensors.index.json; download the index too)"
                    .into(),
            });
        }
        if let Some(file) = pick(singles, "safetensors")? {
            return Checkpoint::open_file(&file);
        }
        if let Some(p) = names
            .iter()
            .find(|n| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth") || n.ends_with(".ckpt"))
        {
            return Err(LoadError::Pickle { path: dir.into(), file: p.clone() });
        }
        Err(LoadError::NotFound {
            path: dir.join("model.safetensors"),
            hint: " (no *.safetensors weights in this folder)".into(),
        })
    }

    fn add_shard(&mut self, path: &Path) -> Result<usize, LoadError> {
        let file = File::open(path).map_err(|e| LoadError::io(path, e))?;
        // SAFETY: the mapping is read-only and private; the bytes are validated by safetensors'
        // parser below and only ever read. (A file modified by another process while mapped can
        // change values, never memory safety of this process beyond what any reader sees.)
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(path, e))?;
        let shard = self.shards.len();
        {
            let st = SafeTensors::deserialize(&mmap)
                .map_err(|e| LoadError::Safetensors { path: path.into(), reason: e.to_string() })?;
            let base = mmap.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let data = view.data();
                let entry = Entry {
                    shard,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start: data.as_ptr() as usize - base,
                    len: data.len(),
                };
                if let Some(prev) = self.tensors.insert(name.clone(), entry) {
                    if prev.shard != shard {
                        return Err(LoadError::Safetensors {
                            path: path.into(),
                            reason: format!("tensor '{name}' is also in {}", self.shards[prev.shard].path.display()),
                        });
                    }
                }
            }
        }
        self.shards.push(Shard { path: path.into(), mmap });
        Ok(shard)
    }

    /// The index or single file this checkpoint was opened from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|e| e.shape.as_slice())
    }

    /// The shard file holding `key`.
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.tensors.get(key).map(|e| self.shards[e.shard].path.as_path())
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> usize {
        self.tensors.values().map(|e| e.len).sum()
    }

    /// Reads one tensor as f32 in the given layout.
    pub fn read_f32(&self, key: &str, layout: Layout) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let entry = self.tensors.get(key).ok_or_else(|| LoadError::Keys {
            dir: self.source.clone(),
            missing: vec![key.to_string()],
            unexpected: vec![],
            mismatched: vec![],
        })?;
        let shard = &self.shards[entry.shard];
        let bytes = &shard.mmap[entry.start..entry.start + entry.len];
        let values = to_f32(bytes, entry.dtype).ok_or_else(|| LoadError::Dtype {
            path: shard.path.clone(),
            key: key.into(),
            dtype: format!("{:?}", entry.dtype),
        })?;
        let (values, shape) = match layout {
            Layout::AsStored => (values, entry.shape.clone()),
            Layout::Transposed => {
                let &[rows, cols] = entry.shape.as_slice() else {
                    return Err(LoadError::Keys {
                        dir: self.source.clone(),
                        missing: vec![],
                        unexpected: vec![],
                        mismatched: vec![ShapeMismatch {
                            key: key.into(),
                            file: shard.path.clone(),
                            expected: vec![0, 0],
                            found: entry.shape.clone(),
                        }],
                    });
                };
                let mut t = vec![0f32; values.len()];
                for r in 0..rows {
                    for c in 0..cols {
                        t[c * rows + r] = values[r * cols + c];
                    }
                }
                (t, vec![cols, rows])
            }
        };
        self.release(entry);
        Ok((values, shape))
    }

    /// Drops a tensor's mapped pages from this process (they stay in the OS page cache).
    fn release(&self, entry: &Entry) {
        #[cfg(unix)]
        {
            let mmap = &self.shards[entry.shard].mmap;
            // SAFETY: read-only file-backed mapping that is never written: after MADV_DONTNEED
            // a later access re-reads the same bytes from the file. No slice into the range is
            // alive here (the data was copied out above).
            let _ = unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, entry.start, entry.len) };
        }
        #[cfg(not(unix))]
        let _ = entry;
    }
}

/// Decodes little-endian tensor bytes to f32. `None` for non-float dtypes.
fn to_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::BF16 => {
            bytes.chunks_exact(2).map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
        }
        Dtype::F16 => {
            bytes.chunks_exact(2).map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
        }
        Dtype::F64 => {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
        }
        _ => return None,
    };
    Some(out)
}

/// Builds a model's tensors from a checkpoint by key, collecting every problem (missing keys,
/// shape mismatches) instead of stopping at the first; [`TensorLoader::finish`] reports them all
/// together with the keys nobody asked for.
pub struct TensorLoader<'a> {
    ckpt: &'a Checkpoint,
    device: ComputeDevice,
    used: HashSet<String>,
    ignored: Vec<String>,
    missing: Vec<String>,
    mismatched: Vec<ShapeMismatch>,
    fatal: Option<LoadError>,
}

impl<'a> TensorLoader<'a> {
    pub fn new(ckpt: &'a Checkpoint, device: &ComputeDevice) -> Self {
        TensorLoader {
            ckpt,
            device: device.clone(),
            used: HashSet::new(),
            ignored: Vec::new(),
            missing: Vec::new(),
            mismatched: Vec::new(),
            fatal: None,
        }
    }

    pub fn device(&self) -> &Device {
        self.device.device()
    }

    /// The first of `keys` the checkpoint holds (for tied weights stored under either name).
    pub fn first_present<'k>(&self, keys: &[&'k str]) -> &'k str {
        keys.iter().copied().find(|k| self.ckpt.contains(k)).unwrap_or(keys[0])
    }

    /// Keys starting with `prefix` are allowed to be unused (e.g. `decoder.` when loading only
    /// the encoder of a full T5 checkpoint).
    pub fn ignore_prefix(&mut self, prefix: &str) {
        self.ignored.push(prefix.to_string());
    }

    /// Tensor `key` with the expected (delivered) shape.
    pub fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        self.load(key, shape, Layout::AsStored)
    }

    /// A PyTorch `nn.Linear` weight stored `[out, in]`, delivered `[in, out]`.
    pub fn linear_weight(&mut self, key: &str, d_out: usize, d_in: usize) -> Tensor<2> {
        self.load(key, [d_in, d_out], Layout::Transposed)
    }

    fn load<const D: usize>(&mut self, key: &str, shape: [usize; D], layout: Layout) -> Tensor<D> {
        let placeholder = |dev: &ComputeDevice| Tensor::<D>::zeros(shape.map(|_| 1), dev.device());
        self.used.insert(key.to_string());
        let Some(stored) = self.ckpt.shape(key) else {
            self.missing.push(key.to_string());
            return placeholder(&self.device);
        };
        let stored_expected: Vec<usize> = match layout {
            Layout::AsStored => shape.to_vec(),
            Layout::Transposed => shape.iter().rev().copied().collect(),
        };
        if stored != stored_expected.as_slice() {
            self.mismatched.push(ShapeMismatch {
                key: key.into(),
                file: self.ckpt.file_of(key).map(Path::to_path_buf).unwrap_or_default(),
                expected: stored_expected,
                found: stored.to_vec(),
            });
            return placeholder(&self.device);
        }
        if self.fatal.is_some() {
            return placeholder(&self.device);
        }
        match self.ckpt.read_f32(key, layout) {
            Ok((values, dims)) => self.device.float_tensor(TensorData::new(values, dims)),
            Err(e) => {
                self.fatal = Some(e);
                placeholder(&self.device)
            }
        }
    }

    /// Every problem found, or `Ok` when all requested keys loaded and no key went unused.
    pub fn finish(self) -> Result<(), LoadError> {
        if let Some(e) = self.fatal {
            return Err(e);
        }
        let unexpected: Vec<(String, PathBuf)> = self
            .ckpt
            .keys()
            .filter(|k| !self.used.contains(*k) && !self.ignored.iter().any(|p| k.starts_with(p.as_str())))
            .map(|k| (k.to_string(), self.ckpt.file_of(k).map(Path::to_path_buf).unwrap_or_default()))
            .collect();
        if self.missing.is_empty() && self.mismatched.is_empty() && unexpected.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Keys {
                dir: self.ckpt.source().to_path_buf(),
                missing: self.missing,
                unexpected,
                mismatched: self.mismatched,
            })
        }
    }
}
