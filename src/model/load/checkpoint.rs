//! Checkpoints: safetensors (one file or a sharded set described by `*.safetensors.index.json`)
//! and PyTorch zip files (`.pt`, read as data by [`super::pt`]), optionally served under other
//! names ([`Checkpoint::renamed`]: SAT -> diffusers, incl. tensors derived from row chunks).
//!
//! Every file is memory-mapped; a tensor is read from the mapping, converted (bf16/f16/f64 ->
//! f32, optionally transposed) into one host buffer, handed to the device, and its mapped pages
//! are dropped from the process (`MADV_DONTNEED`). So loading holds the model once, plus one
//! tensor in flight — never the file and the model together.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::pt::{self, elem_size, Top, ZipData};
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

/// Where a tensor's bytes come from.
#[derive(Debug, Clone)]
enum Source {
    /// `len` bytes at `start` of the shard's mapping (a safetensors tensor or a stored `.pt` storage).
    Mapped { start: usize, len: usize },
    /// Bytes `start..start+len` of a compressed `.pt` zip entry, inflated on read.
    Deflated { zip: ZipData, start: usize, len: usize },
    /// Derived: rows `[c·chunk_rows, (c+1)·chunk_rows)` of `base` for each `c` in `chunks`, concatenated.
    RowChunks { base: Box<Entry>, chunk_rows: usize, chunks: Vec<usize> },
}

#[derive(Debug, Clone)]
struct Entry {
    /// The file holding the data.
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Element strides of a non-contiguous stored view; `None`: row-major contiguous.
    strides: Option<Vec<usize>>,
    source: Source,
    /// The tensor's name in the file, when served under another name.
    stored_as: Option<String>,
}

impl Entry {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// How [`Checkpoint::renamed`] serves one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Under this name, unchanged.
    As(String),
    /// Not served (buffers the model recomputes, unused embeddings).
    Dropped,
    /// Split along the first dimension into `chunks` equal row chunks; each `(name, indices)`
    /// serves the listed chunks concatenated in that order.
    RowChunks { chunks: usize, parts: Vec<(String, Vec<usize>)> },
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
        // torch.save zip files are read as data; anything else pickled is refused.
        let pickles: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth") || n.ends_with(".ckpt"))
            .collect();
        if pickles.iter().any(|n| n.contains("-of-")) {
            return Err(LoadError::Unsupported {
                path: dir.into(),
                reason: "sharded pickle checkpoints are not read; convert them to safetensors".into(),
            });
        }
        if let Some(file) = pick(pickles, "pickle checkpoint")? {
            return Checkpoint::open_pt_top(&file, Top::Auto);
        }
        Err(LoadError::NotFound {
            path: dir.join("model.safetensors"),
            hint: " (no *.safetensors weights in this folder)".into(),
        })
    }

    /// Opens a PyTorch zip checkpoint (`torch.save`). `top_key`: the top-level entry holding
    /// the weights (`Some("module")` for SAT transformers, `Some("state_dict")` for SAT's VAE),
    /// `None` when the file is the state dict itself. Keys are served as stored.
    pub fn open_pt(path: &Path, top_key: Option<&str>) -> Result<Self, LoadError> {
        Checkpoint::open_pt_top(path, top_key.map_or(Top::Root, Top::Key))
    }

    fn open_pt_top(path: &Path, top: Top<'_>) -> Result<Self, LoadError> {
        let mmap = map_file(path)?;
        if !pt::looks_like_zip(&mmap) {
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Err(LoadError::Pickle { path: path.into(), file });
        }
        let tensors = pt::read_state_dict(path, &mmap, top)?;
        let mut ckpt = Checkpoint { source: path.into(), shards: Vec::new(), tensors: BTreeMap::new() };
        for (name, t) in tensors {
            let esz = elem_size(t.dtype);
            let (start, len) = (t.offset * esz, t.span * esz);
            let source = match t.storage {
                ZipData::Stored { start: s, .. } => Source::Mapped { start: s + start, len },
                zip @ ZipData::Deflated { .. } => Source::Deflated { zip, start, len },
            };
            let entry = Entry { shard: 0, dtype: t.dtype, shape: t.shape, strides: t.strides, source, stored_as: None };
            ckpt.tensors.insert(name, entry);
        }
        ckpt.shards.push(Shard { path: path.into(), mmap });
        Ok(ckpt)
    }

    /// The same tensors served under other names: `rule` says, for every stored key, under which
    /// name(s) it is served. Reading stays lazy (derived tensors are cut from their source on read).
    pub fn renamed(self, mut rule: impl FnMut(&str) -> Served) -> Result<Self, LoadError> {
        let mut out: BTreeMap<String, Entry> = BTreeMap::new();
        let insert = |out: &mut BTreeMap<String, Entry>, name: String, entry: Entry| {
            if let Some(prev) = out.get(&name) {
                return Err(LoadError::Unsupported {
                    path: self.source.clone(),
                    reason: format!(
                        "'{name}' would be served by both '{}' and '{}'",
                        prev.stored_as.as_deref().unwrap_or(&name),
                        entry.stored_as.as_deref().unwrap_or(&name)
                    ),
                });
            }
            out.insert(name, entry);
            Ok(())
        };
        for (key, entry) in &self.tensors {
            match rule(key) {
                Served::As(name) => {
                    let mut e = entry.clone();
                    if name != *key {
                        e.stored_as = Some(entry.stored_as.clone().unwrap_or_else(|| key.clone()));
                    }
                    insert(&mut out, name, e)?;
                }
                Served::Dropped => {}
                Served::RowChunks { chunks, parts } => {
                    let rows = entry.shape.first().copied().unwrap_or(0);
                    let bad = |why: String| LoadError::Unsupported {
                        path: self.shards[entry.shard].path.clone(),
                        reason: format!("tensor '{key}' of shape {:?}: {why}", entry.shape),
                    };
                    if chunks == 0 || rows == 0 || rows % chunks != 0 {
                        return Err(bad(format!("cannot be split into {chunks} equal row chunks")));
                    }
                    let chunk_rows = rows / chunks;
                    for (name, idx) in parts {
                        if let Some(c) = idx.iter().find(|&&c| c >= chunks) {
                            return Err(bad(format!("has no row chunk {c} of {chunks}")));
                        }
                        let mut shape = entry.shape.clone();
                        shape[0] = chunk_rows * idx.len();
                        let e = Entry {
                            shard: entry.shard,
                            dtype: entry.dtype,
                            shape,
                            strides: None,
                            stored_as: Some(format!("{key} (row chunks {idx:?} of {chunks})")),
                            source: Source::RowChunks { base: Box::new(entry.clone()), chunk_rows, chunks: idx },
                        };
                        insert(&mut out, name, e)?;
                    }
                }
            }
        }
        Ok(Checkpoint { source: self.source, shards: self.shards, tensors: out })
    }

    fn add_shard(&mut self, path: &Path) -> Result<usize, LoadError> {
        let mmap = map_file(path)?;
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
                    strides: None,
                    source: Source::Mapped { start: data.as_ptr() as usize - base, len: data.len() },
                    stored_as: None,
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

    /// The stored dtype of `key`.
    pub fn dtype(&self, key: &str) -> Option<Dtype> {
        self.tensors.get(key).map(|e| e.dtype)
    }

    /// The name `key` has in the file, when it is served under another name (for a derived
    /// tensor: the source and its row chunks).
    pub fn stored_name(&self, key: &str) -> Option<&str> {
        self.tensors.get(key).and_then(|e| e.stored_as.as_deref())
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> usize {
        self.tensors.values().map(|e| e.numel() * elem_size(e.dtype)).sum()
    }

    fn entry(&self, key: &str) -> Result<&Entry, LoadError> {
        self.tensors.get(key).ok_or_else(|| LoadError::Keys {
            dir: self.source.clone(),
            missing: vec![key.to_string()],
            unexpected: vec![],
            mismatched: vec![],
        })
    }

    /// The row-major bytes of a tensor: borrowed from the mapping when stored that way, else
    /// gathered (strided views), cut (row chunks) or inflated into one buffer.
    fn contiguous_bytes(&self, key: &str, e: &Entry) -> Result<Cow<'_, [u8]>, LoadError> {
        let path = &self.shards[e.shard].path;
        let esz = elem_size(e.dtype);
        let raw: Cow<'_, [u8]> = match &e.source {
            Source::Mapped { start, len } => Cow::Borrowed(&self.shards[e.shard].mmap[*start..start + len]),
            Source::Deflated { zip, start, len } => {
                let ZipData::Deflated { start: zs, compressed, len: zl } = *zip else {
                    return Err(LoadError::Pt { path: path.clone(), reason: format!("tensor '{key}': bad entry") });
                };
                let all = pt::inflate(&self.shards[e.shard].mmap[zs..zs + compressed], zl)
                    .map_err(|r| LoadError::Pt { path: path.clone(), reason: format!("tensor '{key}': {r}") })?;
                Cow::Owned(all[*start..start + len].to_vec())
            }
            Source::RowChunks { base, chunk_rows, chunks } => {
                let b = self.contiguous_bytes(key, base)?;
                let row_bytes = base.shape.iter().skip(1).product::<usize>() * esz;
                let step = chunk_rows * row_bytes;
                let mut out = Vec::with_capacity(step * chunks.len());
                for &c in chunks {
                    out.extend_from_slice(&b[c * step..(c + 1) * step]);
                }
                drop(b);
                self.release(base);
                Cow::Owned(out)
            }
        };
        let Some(strides) = &e.strides else { return Ok(raw) };
        // A strided view: walk its indices in row-major order.
        let n = e.numel();
        let mut out = Vec::with_capacity(n * esz);
        let mut idx = vec![0usize; e.shape.len()];
        for _ in 0..n {
            let at = idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>() * esz;
            out.extend_from_slice(&raw[at..at + esz]);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < e.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(Cow::Owned(out))
    }

    /// Reads an integer tensor (e.g. BatchNorm's `num_batches_tracked`) as i64.
    pub fn read_i64(&self, key: &str) -> Result<(Vec<i64>, Vec<usize>), LoadError> {
        let entry = self.entry(key)?;
        let bytes = self.contiguous_bytes(key, entry)?;
        let values: Vec<i64> = match entry.dtype {
            Dtype::I64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
            Dtype::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            Dtype::I16 => bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect(),
            Dtype::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            d => {
                return Err(LoadError::Dtype {
                    path: self.shards[entry.shard].path.clone(),
                    key: key.into(),
                    dtype: format!("{d:?} (an integer tensor was expected)"),
                })
            }
        };
        drop(bytes);
        self.release(entry);
        Ok((values, entry.shape.clone()))
    }

    /// Reads one tensor as f32 in the given layout.
    pub fn read_f32(&self, key: &str, layout: Layout) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let entry = self.entry(key)?;
        let shard = &self.shards[entry.shard];
        let bytes = self.contiguous_bytes(key, entry)?;
        let values = to_f32(&bytes, entry.dtype).ok_or_else(|| LoadError::Dtype {
            path: shard.path.clone(),
            key: key.into(),
            dtype: format!("{:?}", entry.dtype),
        })?;
        drop(bytes);
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
        match &entry.source {
            Source::Mapped { start, len } => {
                #[cfg(unix)]
                {
                    let mmap = &self.shards[entry.shard].mmap;
                    // SAFETY: read-only file-backed mapping that is never written: after
                    // MADV_DONTNEED a later access re-reads the same bytes from the file. No slice
                    // into the range is alive here (the data was copied out before).
                    let _ = unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, *start, *len) };
                }
                #[cfg(not(unix))]
                let _ = (start, len);
            }
            Source::RowChunks { base, .. } => self.release(base),
            Source::Deflated { .. } => {}
        }
    }
}

/// Memory-maps a checkpoint file read-only.
fn map_file(path: &Path) -> Result<Mmap, LoadError> {
    let file = File::open(path).map_err(|e| LoadError::io(path, e))?;
    // SAFETY: the mapping is read-only and private; the bytes are validated by the safetensors /
    // zip parsers and only ever read. (A file modified by another process while mapped can
    // change values, never memory safety of this process beyond what any reader sees.)
    unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(path, e))
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
