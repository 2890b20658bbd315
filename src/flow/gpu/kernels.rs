//! The colour compute pipeline and its bind group layout, built once per device so an edit only
//! pays for uploads and dispatches.

use super::GpuFlowError;

const COMMON: &str = include_str!("../../../shaders/flow_common.wgsl");
const COLOUR: &str = include_str!("../../../shaders/flow_colour.wgsl");

/// Threads per workgroup along x and y (`@workgroup_size(16, 16, 1)` in the shader).
pub const TILE: u32 = 16;

pub struct Kernels {
    pub colour_layout: wgpu::BindGroupLayout,
    pub colour: wgpu::ComputePipeline,
}

fn entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

const UNIFORM: wgpu::BufferBindingType = wgpu::BufferBindingType::Uniform;
const READ: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: true };
const READ_WRITE: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: false };

fn pipeline(device: &wgpu::Device, name: &str, code: String, layout: &wgpu::BindGroupLayout) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(code.into()),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(name),
        compilation_options: Default::default(),
        cache: None,
    })
}

impl Kernels {
    /// Compiles the shader; shader or layout errors come back as values, not panics.
    pub fn new(device: &wgpu::Device) -> Result<Self, GpuFlowError> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let colour_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("flow colour"),
            entries: &[entry(0, UNIFORM), entry(1, READ), entry(2, READ), entry(3, READ), entry(4, READ_WRITE)],
        });
        let colour = pipeline(device, "colour", format!("{COMMON}\n{COLOUR}"), &colour_layout);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuFlowError::Device(format!("building the flow shaders: {e}")));
        }
        Ok(Kernels { colour_layout, colour })
    }
}
