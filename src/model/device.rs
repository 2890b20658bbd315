//! Run-time backend selection and the precision policy.
//!
//! - `Backend::Cpu` -> burn's Flex device (pure-Rust CPU), always f32.
//! - `Backend::Wgpu` -> burn's wgpu device (Vulkan / Metal / DX12; lavapipe in CI), f32 by default.
//!
//! Precision policy: f32 everywhere is the reference. f16 is offered on wgpu only (wgpu has no
//! bf16 compute; the CPU backend gains nothing from f16): weights and activations in f16,
//! while every norm's variance and every softmax run in f32, and T5's hidden states are clamped
//! to the f16 range after each sub-layer exactly as transformers' T5 does in fp16. The device's
//! default float dtype is configured to match (mixing f16 tensors on an f32-configured wgpu
//! device gives silently wrong results), and every tensor the loader creates carries the
//! compute dtype explicitly.

use std::panic::AssertUnwindSafe;

use burn::tensor::{DType, Device, DeviceKind, FloatDType, Tensor, TensorData};

use crate::Backend;

/// Floating-point compute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// float32 everywhere (default; the reference precision).
    #[default]
    F32,
    /// float16 weights/activations, f32 norms and softmax (wgpu only).
    F16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("precision {precision} is not offered on the {backend} backend (f16 runs on wgpu only; use f32)")]
    Precision { backend: &'static str, precision: &'static str },
    #[error("the {backend} device is unavailable: {reason}")]
    Unavailable { backend: &'static str, reason: String },
    #[error("the {backend} device was already configured for another precision in this process: {reason}")]
    Configure { backend: &'static str, reason: String },
}

/// A burn device plus the precision models on it compute in.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    device: Device,
    backend: Backend,
    precision: Precision,
}

pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Cpu => "cpu",
        Backend::Wgpu => "wgpu",
    }
}

impl ComputeDevice {
    /// Opens the device for `backend` at `precision`, checking that it actually runs (a missing
    /// GPU adapter is an error here, not a panic later).
    pub fn new(backend: Backend, precision: Precision) -> Result<Self, DeviceError> {
        let name = backend_name(backend);
        let mut device = match (backend, precision) {
            (Backend::Cpu, Precision::F32) => Device::flex(),
            (Backend::Cpu, Precision::F16) => {
                return Err(DeviceError::Precision { backend: name, precision: precision.name() })
            }
            (Backend::Wgpu, _) => Device::wgpu(DeviceKind::DefaultDevice),
        };
        let wanted: FloatDType = match precision {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
        };
        let current = device.settings().float_dtype;
        if current != wanted {
            device.configure(wanted).map_err(|e| DeviceError::Configure { backend: name, reason: format!("{e:?}") })?;
        }
        let this = ComputeDevice { device, backend, precision };
        this.probe()?;
        Ok(this)
    }

    /// Runs a tiny computation and reads it back; adapter/driver failures surface as errors.
    fn probe(&self) -> Result<(), DeviceError> {
        let device = self.device.clone();
        let result = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), (&device, DType::F32));
            t.sum().into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))
        }));
        match result {
            Ok(Ok(v)) if v.first().copied() == Some(3.0) => Ok(()),
            Ok(Ok(v)) => Err(DeviceError::Unavailable {
                backend: backend_name(self.backend),
                reason: format!("self-test gave {v:?}, expected [3.0]"),
            }),
            Ok(Err(e)) => Err(DeviceError::Unavailable { backend: backend_name(self.backend), reason: e }),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "device initialisation panicked".into());
                Err(DeviceError::Unavailable { backend: backend_name(self.backend), reason })
            }
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The compute dtype of weights and activations.
    pub fn dtype(&self) -> DType {
        self.precision.dtype()
    }

    /// The largest single tensor the device can hold, if it has such a limit: wgpu binds each
    /// tensor as one storage buffer, so the adapter's binding limit caps it whatever the GPU's
    /// memory (wgpu-hal caps it at `i32::MAX` bytes; lavapipe's is smaller). A bigger tensor
    /// fails at allocation ("can't allocate buffer of size ...", seen on an H200).
    pub fn max_tensor_bytes(&self) -> Option<usize> {
        match self.backend {
            Backend::Cpu => None,
            Backend::Wgpu => Some(wgpu_binding_limit()),
        }
    }

    /// Whether activations are f16 (so norms/softmax upcast and hidden states are clamped).
    pub fn is_half(&self) -> bool {
        self.precision == Precision::F16
    }

    /// A float tensor in the compute dtype from host f32 data.
    pub fn float_tensor<const D: usize>(&self, data: TensorData) -> Tensor<D> {
        Tensor::from_data(data, (&self.device, self.dtype()))
    }
}

/// [`ComputeDevice::max_tensor_bytes`] from a burn device alone (what a tensor's `device()` gives):
/// `None` on the CPU backend, the adapter's binding limit on wgpu.
pub fn max_tensor_bytes_of(device: &Device) -> Option<usize> {
    if *device == Device::flex() {
        None
    } else {
        Some(wgpu_binding_limit())
    }
}

/// `min(max_storage_buffer_binding_size, max_buffer_size)` of the adapter burn's default wgpu
/// device opens (the high-performance one; burn requests the adapter's own limits), read once.
/// `i32::MAX` when no adapter answers (wgpu-hal's cap on every backend).
fn wgpu_binding_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }));
        match adapter {
            Ok(adapter) => {
                let limits = adapter.limits();
                let bytes = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
                usize::try_from(bytes).unwrap_or(usize::MAX)
            }
            Err(_) => i32::MAX as usize,
        }
    })
}
