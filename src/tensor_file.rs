//! Reading and writing safetensors files with typed accessors (fixtures, flow outputs, model weights).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid safetensors file ({reason}); re-download or re-export it")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: has no tensor '{name}'")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' is {found:?}, expected {expected}")]
    Dtype { path: PathBuf, name: String, found: Dtype, expected: &'static str },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// A safetensors file held in memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// A tensor's shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

macro_rules! typed_getter {
    ($name:ident, $t:ty, $dtype:ident) => {
        pub fn $name(&self, name: &str) -> Result<Tensor<$t>, TensorFileError> {
            let view = self.view(name)?;
            if view.dtype() != Dtype::$dtype {
                return Err(TensorFileError::Dtype {
                    path: self.path.clone(),
                    name: name.into(),
                    found: view.dtype(),
                    expected: stringify!($dtype),
                });
            }
            let data = view
                .data()
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                .collect();
            Ok(Tensor { shape: view.shape().to_vec(), data })
        }
    };
}

impl TensorFile {
    pub fn open(path: &Path) -> Result<Self, TensorFileError> {
        let bytes = std::fs::read(path).map_err(|source| TensorFileError::Io { path: path.into(), source })?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| TensorFileError::Format { path: path.into(), reason: e.to_string() })?;
        Ok(TensorFile { path: path.into(), bytes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in open")
    }

    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>, TensorFileError> {
        self.tensors().tensor(name).map_err(|_| TensorFileError::Missing { path: self.path.clone(), name: name.into() })
    }

    pub fn names(&self) -> Vec<String> {
        self.tensors().names().into_iter().map(str::to_string).collect()
    }

    /// The file's string metadata.
    pub fn metadata(&self) -> HashMap<String, String> {
        SafeTensors::read_metadata(&self.bytes).ok().and_then(|(_, m)| m.metadata().clone()).unwrap_or_default()
    }

    typed_getter!(f32, f32, F32);
    typed_getter!(f64, f64, F64);
    typed_getter!(i32, i32, I32);
    typed_getter!(i64, i64, I64);

    pub fn u8(&self, name: &str) -> Result<Tensor<u8>, TensorFileError> {
        let view = self.view(name)?;
        if view.dtype() != Dtype::U8 {
            return Err(TensorFileError::Dtype {
                path: self.path.clone(),
                name: name.into(),
                found: view.dtype(),
                expected: "U8",
            });
        }
        Ok(Tensor { shape: view.shape().to_vec(), data: view.data().to_vec() })
    }
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
pub struct OutTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl OutTensor {
    pub fn f32(name: &str, shape: Vec<usize>, data: &[f32]) -> Self {
        OutTensor {
            name: name.into(),
            dtype: Dtype::F32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    pub fn i32(name: &str, shape: Vec<usize>, data: &[i32]) -> Self {
        OutTensor {
            name: name.into(),
            dtype: Dtype::I32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    pub fn u8(name: &str, shape: Vec<usize>, data: &[u8]) -> Self {
        OutTensor { name: name.into(), dtype: Dtype::U8, shape, bytes: data.to_vec() }
    }
}

/// Writes tensors (and string metadata) to a safetensors file.
pub fn write_tensors(
    path: &Path,
    tensors: &[OutTensor],
    metadata: HashMap<String, String>,
) -> Result<(), TensorFileError> {
    let write_err = |reason: String| TensorFileError::Write { path: path.into(), reason };
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| write_err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = if metadata.is_empty() { None } else { Some(metadata) };
    safetensors::serialize_to_file(views, meta, path).map_err(|e| write_err(e.to_string()))
}
