//! Which GPU the wgpu backend would run on, and whether it is a real one.
//!
//! The studio defaults to the GPU only when there is hardware to gain from: lavapipe and other
//! software Vulkan drivers report themselves as a "CPU" adapter and are slower than the CPU
//! backend, so they never count.

use std::sync::OnceLock;

/// What kind of device an adapter is (wgpu's `DeviceType`, without the wgpu type in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    /// A software driver running on the CPU (lavapipe, SwiftShader, WARP).
    Software,
    Other,
}

impl From<wgpu::DeviceType> for AdapterKind {
    fn from(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
            wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
            wgpu::DeviceType::Cpu => AdapterKind::Software,
            wgpu::DeviceType::Other => AdapterKind::Other,
        }
    }
}

/// The adapter wgpu picks for compute (the high-performance one, as burn's default device does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuAdapter {
    pub name: String,
    pub kind: AdapterKind,
    /// The graphics API it is reached through ("Vulkan", "Metal", ...).
    pub api: String,
}

impl GpuAdapter {
    /// A hardware GPU: worth running the model on by default.
    pub fn is_hardware(&self) -> bool {
        matches!(self.kind, AdapterKind::Discrete | AdapterKind::Integrated)
    }

    /// "NVIDIA H100 80GB HBM3 (Vulkan)".
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.api)
    }
}

static ADAPTER: OnceLock<Option<GpuAdapter>> = OnceLock::new();

/// The adapter if it was already asked for: `None` while unknown, `Some(None)` when there is none.
/// Never blocks (a UI shows "detecting" meanwhile).
pub fn known_adapter() -> Option<Option<&'static GpuAdapter>> {
    ADAPTER.get().map(Option::as_ref)
}

/// The high-performance adapter, asked once per process (`None`: no adapter at all). The first
/// call blocks while wgpu enumerates adapters (tens of milliseconds; longer on a cold driver).
pub fn default_adapter() -> Option<&'static GpuAdapter> {
    ADAPTER
        .get_or_init(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
            let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            }))
            .ok()?;
            let info = adapter.get_info();
            Some(GpuAdapter { name: info.name, kind: info.device_type.into(), api: format!("{:?}", info.backend) })
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(kind: AdapterKind) -> GpuAdapter {
        GpuAdapter { name: "x".into(), kind, api: "Vulkan".into() }
    }

    #[test]
    fn only_hardware_gpus_count() {
        assert!(adapter(AdapterKind::Discrete).is_hardware());
        assert!(adapter(AdapterKind::Integrated).is_hardware());
        assert!(!adapter(AdapterKind::Software).is_hardware(), "lavapipe is slower than the CPU backend");
        assert!(!adapter(AdapterKind::Virtual).is_hardware());
        assert!(!adapter(AdapterKind::Other).is_hardware());
        assert_eq!(AdapterKind::from(wgpu::DeviceType::Cpu), AdapterKind::Software);
    }
}
