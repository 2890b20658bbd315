//! PyTorch `torch.save` checkpoints (`.pt`, `.pth`, zip `.bin`) read strictly as data.
//!
//! The format: a zip archive (entries stored, not compressed) holding `<archive>/data.pkl` (a
//! pickle describing the object), `<archive>/data/<key>` (one raw little-endian storage per key)
//! and `<archive>/byteorder`. The pickle is run by a small virtual machine that knows only the
//! opcodes `torch.save` emits for state dicts and only these globals: `torch._utils.
//! _rebuild_tensor_v2` / `_rebuild_parameter(_with_state)`, `collections.OrderedDict`, the typed
//! storage classes (`torch.FloatStorage`, ...), `torch.Size` and `_codecs.encode` (how protocol
//! 2 writes `bytes`). Nothing is ever called: the VM builds plain values, and any other global is
//! refused with an error naming it. Tensor data is not read here: each tensor becomes a byte range
//! of the file (plus a view: offset, shape, strides), read later from the memory mapping.
//!
//! The zip central directory is read by hand (zip64 included); what the loader needs is each
//! entry's absolute byte range inside our own mapping. A compressed entry (not written by torch,
//! but legal zip) is inflated on read. The `zip` crate (7.4, `default-features = false`) can do
//! the same job: it reads torch's zips and gives `data_start()` of raw entries without copying.
//! It is not used because, measured, it turns on `indexmap`'s `std` feature, which nothing else
//! in our target-side tree enables (only `toml_edit`, a build-time dependency, does): that
//! re-fingerprints `indexmap` and rebuilds the 50-odd crates above it (naga, wgpu, cubecl, burn,
//! eframe) in every existing build directory, the same cost that keeps YAML hand-written
//! (`yaml.rs`). It would not be faster either: listing the 2 002 entries of a 1.5 GB checkpoint
//! takes 0.34 ms here and 4.1 ms through the crate at the dev profile's dependency opt-level 0
//! (0.64 ms optimised). Worth revisiting if another dependency enables `indexmap/std` anyway:
//! the crate alone then costs about 2 s of a clean build.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use safetensors::Dtype;

use super::LoadError;

/// Where a storage's bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZipData {
    /// Stored entry: the bytes `start..start+len` of the file.
    Stored { start: usize, len: usize },
    /// Deflated entry: `compressed` bytes at `start` that inflate to `len` bytes.
    Deflated { start: usize, compressed: usize, len: usize },
}

impl ZipData {
    pub(crate) fn len(&self) -> usize {
        match *self {
            ZipData::Stored { len, .. } | ZipData::Deflated { len, .. } => len,
        }
    }
}

/// One tensor of the state dict, as a view into a storage.
#[derive(Debug, Clone)]
pub(crate) struct PtTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Element strides; `None` when the view is row-major contiguous.
    pub strides: Option<Vec<usize>>,
    /// Element offset of the view into its storage.
    pub offset: usize,
    /// Number of storage elements the view spans (from `offset`).
    pub span: usize,
    pub storage: ZipData,
}

/// Where the state dict is in the pickled object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Top<'a> {
    /// The top level is the state dict (`torch.save(model.state_dict())`, transformers' `.bin`).
    Root,
    /// The entry of the top-level dict holding it: `"module"` for SAT / DeepSpeed, `"state_dict"`
    /// for Lightning-style files (SAT's VAE).
    Key(&'a str),
    /// The top level if it holds only tensors, else its `state_dict`, `module` or `model` entry.
    Auto,
}

/// Reads the state dict of a torch zip checkpoint: `(key, tensor)` in file order.
pub(crate) fn read_state_dict(
    path: &Path,
    bytes: &[u8],
    top_key: Top<'_>,
) -> Result<Vec<(String, PtTensor)>, LoadError> {
    let bad = |reason: String| LoadError::Pt { path: path.into(), reason };
    let entries = zip_entries(bytes).map_err(bad)?;
    let pkl = entries
        .keys()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| bad("no data.pkl in the archive: not a torch.save zip file".into()))?;
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = entries.get(&format!("{prefix}byteorder")) {
        let order = entry_bytes(bytes, order).map_err(bad)?;
        if order.as_slice() != b"little" {
            return Err(bad(format!(
                "byte order '{}' is not supported (only little-endian checkpoints)",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle = entry_bytes(bytes, &entries[&pkl]).map_err(bad)?;
    let root = Unpickler::new(&pickle, path).run()?;

    let out = select_tensors(path, &root, top_key, |name, t| {
        let entry_name = format!("{prefix}data/{}", t.storage.key);
        let data = *entries.get(&entry_name).ok_or_else(|| {
            bad(format!("tensor '{name}': its storage '{entry_name}' is missing from the archive (truncated file?)"))
        })?;
        let elem = elem_size(t.storage.dtype);
        let have = data.len() / elem;
        if have < t.storage.numel {
            return Err(bad(format!(
                "tensor '{name}': storage '{entry_name}' holds {have} elements, the pickle says {}",
                t.storage.numel
            )));
        }
        let (strides, span) = view_span(&t.shape, &t.stride);
        if t.offset + span > t.storage.numel {
            return Err(bad(format!(
                "tensor '{name}': view (offset {}, shape {:?}, stride {:?}) reaches past its storage of {} elements",
                t.offset, t.shape, t.stride, t.storage.numel
            )));
        }
        Ok(PtTensor { dtype: t.storage.dtype, shape: t.shape.clone(), strides, offset: t.offset, span, storage: data })
    });
    dispose(root, []);
    out
}

/// The tensors of the state dict under `top_key`, each turned into a `PtTensor` by `locate`.
fn select_tensors(
    path: &Path,
    root: &Value,
    top_key: Top<'_>,
    mut locate: impl FnMut(&str, &TensorRef) -> Result<PtTensor, LoadError>,
) -> Result<Vec<(String, PtTensor)>, LoadError> {
    let bad = |reason: String| LoadError::Pt { path: path.into(), reason };
    let top_key = match (top_key, root) {
        (Top::Auto, Value::Dict(d)) => {
            let d = d.borrow();
            if d.items.iter().all(|(_, v)| matches!(v, Value::Tensor(_))) {
                Top::Root
            } else {
                ["state_dict", "module", "model"]
                    .into_iter()
                    .find(|k| matches!(d.get_str(k), Some(Value::Dict(_))))
                    .map_or(Top::Root, Top::Key)
            }
        }
        (Top::Auto, _) => Top::Root,
        (t, _) => t,
    };
    let state = match top_key {
        Top::Root | Top::Auto => root.clone(),
        Top::Key(key) => {
            let Value::Dict(d) = root else {
                return Err(LoadError::MissingTopKey {
                    path: path.into(),
                    key: key.into(),
                    found: format!("the top level is {}, not a dict", root.kind()),
                });
            };
            let d = d.borrow();
            match d.get_str(key) {
                Some(v) => v.clone(),
                None => {
                    let names: Vec<String> = d.items.iter().map(|(k, _)| k.short()).collect();
                    return Err(LoadError::MissingTopKey {
                        path: path.into(),
                        key: key.into(),
                        found: format!("top-level keys: {}", names.join(", ")),
                    });
                }
            }
        }
    };
    let Value::Dict(dict) = &state else {
        return Err(bad(format!("the state dict is {}, not a dict of tensors", state.kind())));
    };
    let mut out = Vec::new();
    for (k, v) in dict.borrow().items.iter() {
        let Value::Str(name) = k else {
            return Err(bad(format!("state dict key {} is not a string", k.short())));
        };
        let Value::Tensor(t) = v else {
            return Err(bad(format!("state dict entry '{name}' is {}, not a tensor", v.kind())));
        };
        out.push((name.clone(), locate(name, t)?));
    }
    Ok(out)
}

/// `(None, numel)` for a row-major contiguous view, else `(Some(strides), elements spanned)`.
fn view_span(shape: &[usize], stride: &[usize]) -> (Option<Vec<usize>>, usize) {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return (None, 0);
    }
    let mut expect = 1usize;
    let mut contiguous = true;
    for (&n, &s) in shape.iter().zip(stride).rev() {
        if n != 1 && s != expect {
            contiguous = false;
        }
        expect *= n;
    }
    if contiguous {
        return (None, numel);
    }
    let span = 1 + shape.iter().zip(stride).map(|(&n, &s)| (n - 1) * s).sum::<usize>();
    (Some(stride.to_vec()), span)
}

pub(crate) fn elem_size(dtype: Dtype) -> usize {
    match dtype {
        Dtype::BOOL | Dtype::U8 | Dtype::I8 => 1,
        Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
        Dtype::F32 | Dtype::I32 => 4,
        _ => 8,
    }
}

/// The bytes of a small entry (data.pkl, byteorder), inflating it if needed.
fn entry_bytes(file: &[u8], data: &ZipData) -> Result<Vec<u8>, String> {
    match *data {
        ZipData::Stored { start, len } => Ok(file[start..start + len].to_vec()),
        ZipData::Deflated { start, compressed, len } => inflate(&file[start..start + compressed], len),
    }
}

/// Deflate's densest output: a 258-byte match per (at best) 2 bits, i.e. at most 1032 bytes per input byte.
const MAX_DEFLATE_RATIO: usize = 1032;

/// Inflates a raw-deflate zip entry of known size. The size the zip declares is checked against
/// what its compressed bytes can possibly hold before anything is allocated for it.
pub(crate) fn inflate(compressed: &[u8], len: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    if len > compressed.len().saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64) {
        return Err(format!(
            "a compressed entry of {} bytes claims to inflate to {len} bytes, more than deflate can produce",
            compressed.len()
        ));
    }
    let mut out = Vec::with_capacity(len);
    flate2::read::DeflateDecoder::new(compressed)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("compressed entry does not inflate: {e}"))?;
    if out.len() != len {
        return Err(format!("compressed entry inflates to {} bytes, the zip says {len}", out.len()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// zip central directory

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Is this file a zip archive (local-file-header magic at the start)?
pub(crate) fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Name -> data range of every entry, validated against the file's length.
fn zip_entries(b: &[u8]) -> Result<HashMap<String, ZipData>, String> {
    const EOCD: u32 = 0x0605_4b50;
    const EOCD64_LOCATOR: u32 = 0x0706_4b50;
    const EOCD64: u32 = 0x0606_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    let truncated = "no zip end-of-central-directory record: the file is truncated or not a zip archive";
    if b.len() < 22 {
        return Err(truncated.into());
    }
    // The end record is the last 22 bytes plus a comment of at most 64 KiB.
    let lowest = b.len().saturating_sub(22 + 0xFFFF);
    let eocd = (lowest..=b.len() - 22).rev().find(|&i| u32_at(b, i) == Some(EOCD)).ok_or(truncated)?;
    let short = || "zip end record is cut short".to_string();
    let mut count = u16_at(b, eocd + 10).ok_or_else(short)? as u64;
    let mut cd_size = u32_at(b, eocd + 12).ok_or_else(short)? as u64;
    let mut cd_offset = u32_at(b, eocd + 16).ok_or_else(short)? as u64;
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        let loc = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
        if u32_at(b, loc) != Some(EOCD64_LOCATOR) {
            return Err("zip64 end-of-central-directory locator missing".into());
        }
        let rec = u64_at(b, loc + 8).ok_or("zip64 locator cut short")? as usize;
        if u32_at(b, rec) != Some(EOCD64) {
            return Err("zip64 end-of-central-directory record missing (truncated file?)".into());
        }
        count = u64_at(b, rec + 32).ok_or("zip64 record cut short")?;
        cd_size = u64_at(b, rec + 40).ok_or("zip64 record cut short")?;
        cd_offset = u64_at(b, rec + 48).ok_or("zip64 record cut short")?;
    }
    let cd_end = cd_offset.checked_add(cd_size).filter(|&e| e <= b.len() as u64).ok_or(truncated)?;
    let mut entries = HashMap::new();
    let mut at = cd_offset as usize;
    for _ in 0..count {
        let cut = || format!("central directory entry at byte {at} is cut short (truncated file?)");
        if at as u64 + 46 > cd_end || u32_at(b, at) != Some(CENTRAL) {
            return Err(format!("bad central directory entry at byte {at}"));
        }
        let flags = u16_at(b, at + 8).ok_or_else(cut)?;
        let method = u16_at(b, at + 10).ok_or_else(cut)?;
        let mut compressed = u32_at(b, at + 20).ok_or_else(cut)? as u64;
        let mut size = u32_at(b, at + 24).ok_or_else(cut)? as u64;
        let name_len = u16_at(b, at + 28).ok_or_else(cut)? as usize;
        let extra_len = u16_at(b, at + 30).ok_or_else(cut)? as usize;
        let comment_len = u16_at(b, at + 32).ok_or_else(cut)? as usize;
        let mut local = u32_at(b, at + 42).ok_or_else(cut)? as u64;
        let name = b.get(at + 46..at + 46 + name_len).ok_or_else(cut)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let extra = b.get(at + 46 + name_len..at + 46 + name_len + extra_len).ok_or_else(cut)?;
        // zip64 extra field: the 0xFFFFFFFF fields of the record, in this order.
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let n = u16_at(extra, e + 2).unwrap_or(0) as usize;
            if id == 1 {
                let mut f = e + 4;
                for field in [&mut size, &mut compressed, &mut local] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64_at(extra, f).ok_or_else(|| format!("entry '{name}': zip64 field cut short"))?;
                        f += 8;
                    }
                }
            }
            e += 4 + n;
        }
        if flags & 1 != 0 {
            return Err(format!("entry '{name}' is encrypted"));
        }
        // The data follows the local header, whose name/extra lengths may differ from the central one.
        let l = local as usize;
        if u32_at(b, l) != Some(LOCAL) {
            return Err(format!("entry '{name}': no local header at byte {l} (truncated or corrupt file)"));
        }
        let start = l + 30 + u16_at(b, l + 26).ok_or_else(cut)? as usize + u16_at(b, l + 28).ok_or_else(cut)? as usize;
        if start as u64 + compressed > b.len() as u64 {
            return Err(format!(
                "entry '{name}' needs bytes {start}..{} but the file has {} (truncated file?)",
                start as u64 + compressed,
                b.len()
            ));
        }
        let data = match method {
            0 if compressed == size => ZipData::Stored { start, len: size as usize },
            0 => return Err(format!("stored entry '{name}' has compressed size {compressed} != size {size}")),
            8 => ZipData::Deflated { start, compressed: compressed as usize, len: size as usize },
            m => {
                return Err(format!(
                    "entry '{name}' uses zip compression method {m} (only stored and deflate are read)"
                ))
            }
        };
        entries.insert(name, data);
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------
// pickle VM

#[derive(Debug, Clone)]
struct StorageRef {
    dtype: Dtype,
    key: String,
    numel: usize,
}

#[derive(Debug, Clone)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// The callables and classes a state-dict pickle may name; anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    OrderedDict,
    Storage(Dtype),
    TorchSize,
    CodecsEncode,
}

type Shared<T> = Rc<RefCell<T>>;

/// A dict in insertion order, with an index so that filling it stays linear.
#[derive(Debug, Default)]
struct DictData {
    items: Vec<(Value, Value)>,
    index: HashMap<DictKey, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DictKey {
    Str(String),
    Int(i64),
}

impl DictData {
    fn get_str(&self, key: &str) -> Option<&Value> {
        self.index.get(&DictKey::Str(key.to_string())).map(|&i| &self.items[i].1)
    }
}

fn new_dict() -> Value {
    Value::Dict(Rc::new(RefCell::new(DictData::default())))
}

/// A pickled value. Lists and dicts are shared (memo references alias them, as in Python).
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>),
    List(Shared<Vec<Value>>),
    Dict(Shared<DictData>),
    Global(Global),
    Storage(StorageRef),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    /// A short rendering for messages.
    fn short(&self) -> String {
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            v => v.kind().to_string(),
        }
    }
}

/// Maps a global `module.name` onto what it may be, or refuses it.
fn resolve_global(module: &str, name: &str, path: &Path) -> Result<Global, LoadError> {
    let storage = |d| Ok(Global::Storage(d));
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Ok(Global::RebuildParameterWithState),
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch", "Size") => Ok(Global::TorchSize),
        ("_codecs", "encode") => Ok(Global::CodecsEncode),
        ("torch", "FloatStorage") => storage(Dtype::F32),
        ("torch", "DoubleStorage") => storage(Dtype::F64),
        ("torch", "HalfStorage") => storage(Dtype::F16),
        ("torch", "BFloat16Storage") => storage(Dtype::BF16),
        ("torch", "LongStorage") => storage(Dtype::I64),
        ("torch", "IntStorage") => storage(Dtype::I32),
        ("torch", "ShortStorage") => storage(Dtype::I16),
        ("torch", "CharStorage") => storage(Dtype::I8),
        ("torch", "ByteStorage") | ("torch", "UntypedStorage") => storage(Dtype::U8),
        ("torch", "BoolStorage") => storage(Dtype::BOOL),
        _ => Err(LoadError::PickleGlobal { path: path.into(), global: format!("{module}.{name}") }),
    }
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], path: &'a Path) -> Self {
        Unpickler { data, pos: 0, path, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    fn err(&self, reason: impl std::fmt::Display) -> LoadError {
        LoadError::Pt { path: self.path.into(), reason: format!("data.pkl at byte {}: {reason}", self.pos) }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.err("cut short"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap_or_default()))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }
    fn line(&mut self) -> Result<&'a str, LoadError> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').ok_or_else(|| self.err("unterminated line"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<Value, LoadError> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))?))
    }

    fn pop(&mut self) -> Result<Value, LoadError> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }
    fn top(&mut self) -> Result<&mut Value, LoadError> {
        if self.stack.is_empty() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.last_mut().expect("checked non-empty"))
    }
    /// The values pushed since the last MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>, LoadError> {
        let m = self.marks.pop().ok_or_else(|| self.err("no MARK"))?;
        if m > self.stack.len() {
            return Err(self.err("MARK above the stack"));
        }
        Ok(self.stack.split_off(m))
    }
    fn memo_get(&self, i: u32) -> Result<Value, LoadError> {
        self.memo.get(&i).cloned().ok_or_else(|| self.err(format!("memo entry {i} was never stored")))
    }
    fn memo_put(&mut self, i: u32) -> Result<(), LoadError> {
        let v = self.stack.last().cloned().ok_or_else(|| self.err("stack underflow"))?;
        self.memo.insert(i, v);
        Ok(())
    }

    fn set_items(&mut self, dict: &Value, items: Vec<Value>) -> Result<(), LoadError> {
        let Value::Dict(d) = dict else { return Err(self.err(format!("SETITEM(S) on {}", dict.kind()))) };
        if items.len() % 2 != 0 {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = match &k {
                Value::Str(s) => DictKey::Str(s.clone()),
                Value::Int(i) => DictKey::Int(*i),
                other => return Err(self.err(format!("dict key is {} (state dicts use string keys)", other.kind()))),
            };
            // Python dict semantics: a repeated key replaces the value in place.
            match d.index.get(&key) {
                Some(&i) => d.items[i].1 = v,
                None => {
                    let i = d.items.len();
                    d.index.insert(key, i);
                    d.items.push((k, v));
                }
            }
        }
        Ok(())
    }

    fn run(mut self) -> Result<Value, LoadError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("pickle protocol {p} is not known")));
                    }
                }
                0x95 => {
                    // FRAME (protocol 4): a length prefix only
                    self.u64()?;
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.err("integer wider than 64 bits"));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xFF; 8] } else { [0; 8] };
                    buf[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.stack.push(Value::Float(f64::from_be_bytes(b.try_into().unwrap_or_default())));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'U' | b'T' => {
                    // SHORT_BINSTRING / BINSTRING (Python 2 str): taken as latin-1 text
                    let n = if op == b'U' { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n)?;
                    self.stack.push(Value::Str(b.iter().map(|&c| c as char).collect()));
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b')' => self.stack.push(Value::Tuple(Rc::new(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b']' => self.stack.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'}' => self.stack.push(new_dict()),
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = new_dict();
                    self.set_items(&dict, items)?;
                    self.stack.push(dict);
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => {
                            let k = other.kind();
                            return Err(self.err(format!("APPEND to {k}")));
                        }
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => {
                            let k = other.kind();
                            return Err(self.err(format!("APPENDS to {k}")));
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, items)?;
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = resolve_global(module, name, self.path)?;
                    self.stack.push(Value::Global(g));
                }
                0x93 => {
                    // STACK_GLOBAL (protocol 4): module and name as strings on the stack
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.err("STACK_GLOBAL without string operands"));
                    };
                    let g = resolve_global(module, name, self.path)?;
                    self.stack.push(Value::Global(g));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent_load(pid)?;
                    self.stack.push(s);
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: only the attribute dict of an OrderedDict (`state_dict()._metadata`),
                    // which carries module versions we do not need.
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    match (&target, &state) {
                        (Value::Dict(_), Value::Dict(_) | Value::None) => {}
                        _ => {
                            return Err(self.err(format!(
                                "BUILD of {} with {} (only plain containers are read)",
                                target.kind(),
                                state.kind()
                            )))
                        }
                    }
                }
                0x8f..=0x91 => {
                    return Err(self.err("sets are not part of a state dict"));
                }
                other => {
                    return Err(self.err(format!(
                        "pickle opcode 0x{other:02x} ({:?}) is not read (only plain data and tensors are)",
                        other as char
                    )))
                }
            }
        }
    }

    /// `('storage', <storage class>, key, location, numel)` -> a storage reference.
    fn persistent_load(&self, pid: Value) -> Result<Value, LoadError> {
        let Value::Tuple(t) = &pid else { return Err(self.err(format!("persistent id is {}", pid.kind()))) };
        match t.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), _location, Value::Int(numel)]
                if tag == "storage" && *numel >= 0 =>
            {
                if key.contains('/') || key.contains("..") {
                    return Err(self.err(format!("storage key {key:?} is not a plain name")));
                }
                Ok(Value::Storage(StorageRef { dtype: *dtype, key: key.clone(), numel: *numel as usize }))
            }
            _ => Err(self.err("persistent id is not ('storage', <storage class>, key, location, numel)")),
        }
    }

    fn reduce(&self, func: Value, args: Value) -> Result<Value, LoadError> {
        let Value::Global(g) = func else {
            return Err(self.err(format!("REDUCE calls {}, not an allowed global", func.kind())));
        };
        let Value::Tuple(args) = args else { return Err(self.err("REDUCE arguments are not a tuple")) };
        let ints = |v: &Value| -> Option<Vec<usize>> {
            let Value::Tuple(t) = v else { return None };
            t.iter().map(|x| if let Value::Int(i) = x { usize::try_from(*i).ok() } else { None }).collect()
        };
        match g {
            Global::RebuildTensorV2 => match args.as_slice() {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                [Value::Storage(s), Value::Int(offset), size, stride, _requires_grad, _hooks, ..] => {
                    let shape = ints(size).ok_or_else(|| self.err("tensor size is not a tuple of ints"))?;
                    let stride = ints(stride).ok_or_else(|| self.err("tensor stride is not a tuple of ints"))?;
                    if shape.len() != stride.len() || *offset < 0 {
                        return Err(self.err("tensor size, stride and offset do not fit together"));
                    }
                    Ok(Value::Tensor(Rc::new(TensorRef {
                        storage: s.clone(),
                        offset: *offset as usize,
                        shape,
                        stride,
                    })))
                }
                _ => Err(self.err("_rebuild_tensor_v2 with unexpected arguments")),
            },
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.err("_rebuild_parameter of something that is not a tensor")),
            },
            Global::OrderedDict => match args.as_slice() {
                [] => Ok(new_dict()),
                _ => Err(self.err("OrderedDict called with arguments")),
            },
            Global::TorchSize => match args.as_slice() {
                [t @ Value::Tuple(_)] => Ok(t.clone()),
                _ => Err(self.err("torch.Size of something that is not a tuple")),
            },
            Global::CodecsEncode => match args.as_slice() {
                // protocol 2 writes bytes as _codecs.encode(latin-1 text, 'latin1')
                [Value::Str(s), Value::Str(enc)] if enc == "latin1" || enc == "latin-1" => {
                    let b: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                    b.map(Value::Bytes).ok_or_else(|| self.err("_codecs.encode of non-latin-1 text"))
                }
                _ => Err(self.err("_codecs.encode with unexpected arguments")),
            },
            Global::Storage(_) => Err(self.err("a storage class called directly")),
        }
    }
}

/// Drops a value without recursion: a crafted pickle can nest containers deeper than the
/// thread's stack would survive in a recursive drop.
fn dispose(root: Value, more: impl IntoIterator<Item = Value>) {
    let mut work: Vec<Value> = vec![root];
    work.extend(more);
    while let Some(v) = work.pop() {
        match v {
            Value::Tuple(rc) => {
                if let Ok(items) = Rc::try_unwrap(rc) {
                    work.extend(items);
                }
            }
            Value::List(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    work.extend(cell.into_inner());
                }
            }
            Value::Dict(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    for (k, v) in cell.into_inner().items {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Unpickler<'_> {
    fn drop(&mut self) {
        let memo: Vec<Value> = self.memo.drain().map(|(_, v)| v).collect();
        let stack = std::mem::take(&mut self.stack);
        dispose(Value::None, memo.into_iter().chain(stack));
    }
}
