//! Run-time backend selection and the precision policy.
//!
//! - `Backend::Cpu` -> burn's Flex device (pure-Rust CPU), always f32.
//! - `Backend::Wgpu` -> burn's wgpu device (Vulkan / Metal / DX12; lavapipe in CI), f32 by default.
//!   Its kernels are SPIR-V on Vulkan GPUs in a build with the `vulkan` feature (the default:
//!   tensor cores through cooperative matrices), WGSL everywhere else ([`shader_language`]).
//!   cubecl fixes that choice at compile time for every Vulkan adapter, and mesa 22.3's lavapipe
//!   segfaults compiling cubecl's SPIR-V matmuls (`vkCreateComputePipelines`), so a SPIR-V build
//!   refuses software Vulkan adapters with a message instead ([`ComputeDevice::new`]); CI tests
//!   the WGSL build (`--no-default-features`) on lavapipe.
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
    #[error("{adapter} is a software Vulkan adapter, and this build compiles burn's kernels to SPIR-V for Vulkan, which that driver cannot compile (mesa's lavapipe segfaults); use --backend cpu (faster than a software adapter anyway), or a WGSL-only build: cargo build --release --no-default-features")]
    SoftwareVulkan { adapter: String },
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
            (Backend::Wgpu, _) => {
                if let Some(adapter) = wgpu_run_adapter(&wgpu_adapters()) {
                    if refuses_adapter(adapter, SPIRV_BUILD) {
                        return Err(DeviceError::SoftwareVulkan { adapter: adapter.describe() });
                    }
                }
                Device::wgpu(DeviceKind::DefaultDevice)
            }
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

/// A device tensor's values as host f32, f16 results widened first (the one read-back every
/// verify check, trace and export uses). Blocks until the device has computed it.
pub fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    let t = if t.dtype() == DType::F32 { t } else { t.cast(DType::F32) };
    t.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))
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

/// Whether this build has burn's autotune and fusion (the `tuned-kernels` feature).
pub const TUNED_BUILD: bool = cfg!(feature = "tuned-kernels");

/// Whether burn runs a fused (flash) attention kernel on `device` for a call without bias and
/// with the default scale: every cubecl (GPU) device in a build with burn's autotune, which picks
/// among its flash kernels (its materialising fallback only competes for short query counts).
/// Without autotune burn always takes that fallback, and the CPU backend's `attention` tiles the
/// scores itself: both are driven block by block instead.
pub fn has_fused_attention(device: &Device) -> bool {
    TUNED_BUILD && *device != Device::flex()
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

/// One wgpu adapter as the device choice sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub device_type: wgpu::DeviceType,
    /// The graphics API it runs through (Vulkan, Metal, DX12, GL).
    pub api: wgpu::Backend,
}

impl AdapterSummary {
    /// A real GPU: discrete or integrated. Software rasterisers (lavapipe, llvmpipe, WARP) report
    /// `Cpu` and are slower than the CPU backend; virtual and unknown adapters are not trusted.
    pub fn is_real_gpu(&self) -> bool {
        matches!(self.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu)
    }

    /// e.g. `NVIDIA H100 (vulkan, discrete GPU)`.
    pub fn describe(&self) -> String {
        let kind = match self.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "software adapter",
            wgpu::DeviceType::Other => "unknown adapter type",
        };
        format!("{} ({}, {kind})", self.name, self.api.to_str())
    }
}

/// Whether this build compiles burn's kernels to SPIR-V on Vulkan adapters (the `vulkan` feature).
pub const SPIRV_BUILD: bool = cfg!(feature = "vulkan");

/// The shader language burn's kernels take on `adapter`: SPIR-V on Vulkan in a SPIR-V build
/// (cubecl falls back to WGSL on a Vulkan driver older than 1.2 without the memory-model and
/// buffer-address extensions, which no supported GPU driver is), WGSL everywhere else.
pub fn shader_language(adapter: &AdapterSummary, spirv_build: bool) -> &'static str {
    if spirv_build && adapter.api == wgpu::Backend::Vulkan {
        "SPIR-V"
    } else {
        "WGSL"
    }
}

/// A SPIR-V build cannot open a software Vulkan adapter (lavapipe crashes on cubecl's SPIR-V).
fn refuses_adapter(adapter: &AdapterSummary, spirv_build: bool) -> bool {
    spirv_build && adapter.api == wgpu::Backend::Vulkan && adapter.device_type == wgpu::DeviceType::Cpu
}

/// Which backend and precision a run uses, and why (the line a run prints first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChoice {
    pub backend: Backend,
    pub precision: Precision,
    /// The adapter a wgpu run opens (burn's default device takes the high-performance one).
    pub adapter: Option<AdapterSummary>,
    pub reason: String,
}

impl DeviceChoice {
    /// Picks the backend and precision from the adapters wgpu reports and what the user asked
    /// for (`None` = not given): the best real GPU (discrete before integrated) with f16 when
    /// there is one, else the CPU backend in f32. A software adapter is never picked on its own,
    /// and keeps f32 when asked for. A pure function of its inputs, so it is tested without a GPU.
    pub fn choose(adapters: &[AdapterSummary], backend: Option<Backend>, precision: Option<Precision>) -> Self {
        let best_gpu = best_gpu(adapters).cloned();
        let skipped = || {
            let others: Vec<String> = adapters.iter().map(AdapterSummary::describe).collect();
            if others.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", others.join(", "))
            }
        };
        let any_adapter = || wgpu_run_adapter(adapters).cloned();
        let (backend, adapter, reason) = match (backend, precision, &best_gpu) {
            (Some(Backend::Cpu), _, _) => (Backend::Cpu, None, "--backend cpu".to_string()),
            (Some(Backend::Wgpu), _, Some(_)) => (Backend::Wgpu, best_gpu.clone(), "--backend wgpu".into()),
            (Some(Backend::Wgpu), _, None) => {
                (Backend::Wgpu, any_adapter(), "--backend wgpu; no GPU adapter, so a software one".into())
            }
            (None, _, Some(_)) => (Backend::Wgpu, best_gpu.clone(), "best GPU adapter found".into()),
            (None, Some(Precision::F16), None) => (
                Backend::Wgpu,
                any_adapter(),
                "f16 asked for (wgpu only) and no GPU adapter found, so a software one".into(),
            ),
            (None, _, None) => (Backend::Cpu, None, format!("no GPU adapter found, using CPU{}", skipped())),
        };
        // f16 is the GPU default; the CPU backend and software adapters keep the reference f32.
        let precision = precision.unwrap_or(match (backend, &best_gpu) {
            (Backend::Wgpu, Some(_)) => Precision::F16,
            _ => Precision::F32,
        });
        DeviceChoice { backend, precision, adapter, reason }
    }

    /// e.g. `compute: wgpu (SPIR-V kernels, autotuned, fused) on NVIDIA H100 (vulkan, discrete
    /// GPU), f16 — best GPU adapter found`.
    pub fn line(&self) -> String {
        self.line_for_build(SPIRV_BUILD)
    }

    /// [`DeviceChoice::line`] as a build with or without SPIR-V says it.
    pub fn line_for_build(&self, spirv_build: bool) -> String {
        let tuning = if TUNED_BUILD { "autotuned, fused" } else { "untuned" };
        let target = match (self.backend, &self.adapter) {
            (Backend::Cpu, _) => "cpu (burn flex, pure Rust)".to_string(),
            (Backend::Wgpu, Some(a)) => {
                format!("wgpu ({} kernels, {tuning}) on {}", shader_language(a, spirv_build), a.describe())
            }
            (Backend::Wgpu, None) => format!("wgpu (WGSL kernels, {tuning}) on the default adapter"),
        };
        format!("compute: {target}, {} — {}", self.precision.name(), self.reason)
    }
}

/// The best real GPU: a discrete one before an integrated one.
pub fn best_gpu(adapters: &[AdapterSummary]) -> Option<&AdapterSummary> {
    let of_type = |t| adapters.iter().find(|a| a.device_type == t);
    of_type(wgpu::DeviceType::DiscreteGpu).or_else(|| of_type(wgpu::DeviceType::IntegratedGpu))
}

/// The adapter a wgpu run opens: the best real GPU, else whatever adapter there is (a software one).
pub fn wgpu_run_adapter(adapters: &[AdapterSummary]) -> Option<&AdapterSummary> {
    best_gpu(adapters).or_else(|| adapters.first())
}

static WGPU_ADAPTERS: std::sync::OnceLock<Vec<AdapterSummary>> = std::sync::OnceLock::new();

/// Every adapter wgpu reports on this machine (all graphics APIs), read once per process. The
/// first call blocks while wgpu enumerates them (longer on a cold driver).
pub fn wgpu_adapters() -> Vec<AdapterSummary> {
    WGPU_ADAPTERS
        .get_or_init(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
            let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
            adapters
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    AdapterSummary { name: info.name, device_type: info.device_type, api: info.backend }
                })
                .collect()
        })
        .clone()
}

/// The adapters if they were already enumerated, without blocking (a UI says "detecting" meanwhile).
pub fn known_wgpu_adapters() -> Option<&'static [AdapterSummary]> {
    WGPU_ADAPTERS.get().map(Vec::as_slice)
}

impl ComputeDevice {
    /// Opens the device a run should use: what the user asked for, else the best real GPU in f16,
    /// else the CPU in f32 (see [`DeviceChoice::choose`]). When the GPU was picked automatically
    /// and fails to open, the run falls back to the CPU and the choice says why. The studio and
    /// every CLI command call this; `--backend cpu` never touches wgpu.
    pub fn best_available(
        backend: Option<Backend>,
        precision: Option<Precision>,
    ) -> Result<(Self, DeviceChoice), DeviceError> {
        let adapters = if backend == Some(Backend::Cpu) { Vec::new() } else { wgpu_adapters() };
        let choice = DeviceChoice::choose(&adapters, backend, precision);
        match Self::new(choice.backend, choice.precision) {
            Ok(device) => Ok((device, choice)),
            Err(e) if backend.is_none() && precision.is_none() && choice.backend == Backend::Wgpu => {
                let reason = format!("the GPU failed to open ({e}), using CPU");
                let fallback = DeviceChoice { backend: Backend::Cpu, precision: Precision::F32, adapter: None, reason };
                Ok((Self::new(Backend::Cpu, Precision::F32)?, fallback))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType;

    fn adapter(name: &str, device_type: DeviceType) -> AdapterSummary {
        AdapterSummary { name: name.into(), device_type, api: wgpu::Backend::Vulkan }
    }

    fn lavapipe() -> AdapterSummary {
        adapter("llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Cpu)
    }

    #[test]
    fn no_adapter_or_only_software_ones_pick_the_cpu_in_f32() {
        for adapters in [vec![], vec![lavapipe()], vec![lavapipe(), adapter("virtio", DeviceType::VirtualGpu)]] {
            let c = DeviceChoice::choose(&adapters, None, None);
            assert_eq!((c.backend, c.precision, c.adapter), (Backend::Cpu, Precision::F32, None), "{adapters:?}");
            assert!(c.reason.starts_with("no GPU adapter found, using CPU"), "{}", c.reason);
        }
        let c = DeviceChoice::choose(&[lavapipe()], None, None);
        assert!(c.line().contains("skipped: llvmpipe"), "{}", c.line());
        assert!(c.line().starts_with("compute: cpu"), "{}", c.line());
    }

    #[test]
    fn a_real_gpu_is_picked_in_f16_discrete_before_integrated() {
        let igpu = adapter("Intel UHD 770", DeviceType::IntegratedGpu);
        let dgpu = adapter("NVIDIA H100 80GB HBM3", DeviceType::DiscreteGpu);
        let c = DeviceChoice::choose(&[lavapipe(), igpu.clone(), dgpu.clone()], None, None);
        assert_eq!((c.backend, c.precision, c.adapter.as_ref()), (Backend::Wgpu, Precision::F16, Some(&dgpu)));
        let line = c.line_for_build(false);
        assert!(line.contains("WGSL") && line.contains("NVIDIA H100") && line.contains("f16"), "{line}");
        let line = c.line_for_build(true);
        assert!(line.contains("SPIR-V kernels") && line.contains("NVIDIA H100"), "{line}");
        let c = DeviceChoice::choose(&[lavapipe(), igpu.clone()], None, None);
        assert_eq!((c.backend, c.precision, c.adapter), (Backend::Wgpu, Precision::F16, Some(igpu)));
    }

    #[test]
    fn spirv_builds_take_spirv_on_vulkan_and_refuse_software_vulkan() {
        let metal = AdapterSummary {
            name: "Apple M3".into(),
            device_type: DeviceType::IntegratedGpu,
            api: wgpu::Backend::Metal,
        };
        let h100 = adapter("NVIDIA H100", DeviceType::DiscreteGpu);
        assert_eq!(shader_language(&h100, true), "SPIR-V");
        assert_eq!(shader_language(&h100, false), "WGSL");
        assert_eq!(shader_language(&metal, true), "WGSL");
        assert!(refuses_adapter(&lavapipe(), true));
        assert!(!refuses_adapter(&lavapipe(), false), "the WGSL build runs lavapipe (CI)");
        assert!(!refuses_adapter(&h100, true));
        let message = DeviceError::SoftwareVulkan { adapter: lavapipe().describe() }.to_string();
        assert!(message.contains("llvmpipe") && message.contains("--backend cpu"), "{message}");
    }

    #[test]
    fn what_the_user_names_wins() {
        let dgpu = adapter("RTX 4090", DeviceType::DiscreteGpu);
        let c = DeviceChoice::choose(std::slice::from_ref(&dgpu), Some(Backend::Cpu), None);
        assert_eq!((c.backend, c.precision), (Backend::Cpu, Precision::F32));
        let c = DeviceChoice::choose(std::slice::from_ref(&dgpu), None, Some(Precision::F32));
        assert_eq!((c.backend, c.precision), (Backend::Wgpu, Precision::F32));
        let c = DeviceChoice::choose(&[dgpu], Some(Backend::Wgpu), None);
        assert_eq!((c.backend, c.precision), (Backend::Wgpu, Precision::F16));
        // A software adapter runs only when asked for, in f32 unless f16 is named too (CI's lavapipe runs).
        let c = DeviceChoice::choose(&[lavapipe()], Some(Backend::Wgpu), None);
        assert_eq!((c.backend, c.precision, c.adapter), (Backend::Wgpu, Precision::F32, Some(lavapipe())));
        let c = DeviceChoice::choose(&[lavapipe()], None, Some(Precision::F16));
        assert_eq!((c.backend, c.precision), (Backend::Wgpu, Precision::F16));
    }
}
