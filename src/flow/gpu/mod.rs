//! The motion field on the GPU (wgpu compute shaders under `shaders/`).
//!
//! CONTRACT (stable API; the studio codes against it):
//! - `GpuFlow::new()` opens a headless device; `GpuFlow::from_device` shares the studio's.
//! - `motion_field` returns the same `MotionField` as the CPU path (read back).
//! - `compute_on_device` leaves the colours on the GPU as packed RGBA8 for live display.
//!
//! Design: the CPU builds the sparse splats (so bad input fails exactly as on the CPU path) and
//! each splat's reflect-101 axis weights ([`tables`]); pass 1 (`flow_splat.wgsl`) sums them per
//! pixel and takes the clip's max norm, pass 2 (`flow_colour.wgsl`) maps flow to colours. On a
//! device with SHADER_F64 both passes reproduce the CPU path's arithmetic exactly; without it
//! they run in f32 and the colours may differ by a level.

mod chunks;
mod kernels;
mod readback;
mod tables;

use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::colour::colour_wheel;
use super::{sparse_displacement, ClipSize, FlowField, FlowRgb, MotionField, Support, TrackPoints};
use chunks::ChunkPlan;
use kernels::Kernels;
use tables::SplatTables;

#[derive(Debug, thiserror::Error)]
pub enum GpuFlowError {
    #[error("no GPU adapter found ({0}); on Debian install mesa-vulkan-drivers for a software Vulkan device")]
    NoAdapter(String),
    #[error("invalid input: {0}")]
    Input(#[from] crate::trajectory::TrajectoryError),
    #[error("GPU error: {0}")]
    Device(String),
}

/// Flow colours resident on the GPU.
pub struct GpuMotionField {
    pub size: ClipSize,
    pub max_norm: f32,
    /// `[T, H, W]` packed RGBA8 (`r | g << 8 | b << 16 | 255 << 24`), usage STORAGE | COPY_SRC.
    pub rgba: wgpu::Buffer,
}

pub struct GpuFlow {
    device: wgpu::Device,
    queue: wgpu::Queue,
    kernels: Result<Kernels, String>,
    /// `[55]` wheel colours / 255 as the CPU rounds them, rgb + padding.
    wheel: wgpu::Buffer,
    /// Per-chunk flow buffers of the last clip size, reused by the next edit.
    flow_scratch: Mutex<Vec<wgpu::Buffer>>,
}

/// What a run leaves behind besides the colours.
struct Run {
    field: GpuMotionField,
    boxes: Vec<Vec<Support>>,
    /// `[T, H, W, 2]` when the flow was read back.
    flow: Option<Vec<f32>>,
    /// `[T, H, W]` packed RGBA8 when the colours were read back.
    rgba: Option<Vec<u32>>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    frame_base: u32,
    rgba_base: u32,
}

fn le_u32s(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl GpuFlow {
    /// A headless device (any adapter wgpu finds, software Vulkan included).
    pub fn new() -> Result<Self, GpuFlowError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuFlowError::NoAdapter(e.to_string()))?;
        // f64 makes the result exact; the adapter's own limits allow the largest bindings.
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tora-studio flow"),
            required_features: adapter.features() & wgpu::Features::SHADER_F64,
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuFlowError::Device(format!("opening {}: {e}", adapter.get_info().name)))?;
        let flow = Self::from_device(device, queue);
        flow.kernels()?;
        Ok(flow)
    }

    /// Shares an existing device (the studio's eframe/egui-wgpu device).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let kernels = Kernels::new(&device).map_err(|e| e.to_string());
        let wheel: Vec<[f32; 4]> =
            colour_wheel().iter().map(|c| [c[0] / 255.0, c[1] / 255.0, c[2] / 255.0, 0.0]).collect();
        let wheel = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("flow wheel"),
            contents: bytemuck::cast_slice(&wheel),
            usage: wgpu::BufferUsages::STORAGE,
        });
        GpuFlow { device, queue, kernels, wheel, flow_scratch: Mutex::new(Vec::new()) }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Whether this device reproduces the CPU path exactly (it has SHADER_F64); otherwise the
    /// colours may differ from the CPU's by one level.
    pub fn is_exact(&self) -> bool {
        self.kernels.as_ref().is_ok_and(|k| k.exact)
    }

    /// The whole flow procedure on the GPU, read back into the CPU types.
    pub fn motion_field(&self, tracks: Vec<TrackPoints>, size: ClipSize) -> Result<MotionField, GpuFlowError> {
        let run = self.run(&tracks, size, true)?;
        let (Some(flow), Some(rgba)) = (run.flow, run.rgba) else {
            return Err(GpuFlowError::Device("the readback is missing".into()));
        };
        let n = size.pixels();
        let mut planes = vec![0u8; size.frames * 3 * n];
        if n > 0 {
            for (frame, colours) in planes.chunks_exact_mut(3 * n).zip(rgba.chunks_exact(n)) {
                for (i, &packed) in colours.iter().enumerate() {
                    frame[i] = packed as u8;
                    frame[n + i] = (packed >> 8) as u8;
                    frame[2 * n + i] = (packed >> 16) as u8;
                }
            }
        }
        let max_norm = run.field.max_norm;
        Ok(MotionField {
            points: tracks,
            flow: FlowField::from_dense(size, &flow, run.boxes),
            rgb: FlowRgb { size, data: planes, max_norm },
        })
    }

    /// The flow colours of the whole clip, left on the GPU.
    pub fn compute_on_device(&self, tracks: &[TrackPoints], size: ClipSize) -> Result<GpuMotionField, GpuFlowError> {
        Ok(self.run(tracks, size, false)?.field)
    }

    fn kernels(&self) -> Result<&Kernels, GpuFlowError> {
        self.kernels.as_ref().map_err(|e| GpuFlowError::Device(e.clone()))
    }

    /// The per-chunk flow buffers for `plan`, reusing the previous ones when the sizes match.
    fn flow_buffers<'a>(&self, scratch: &'a mut Vec<wgpu::Buffer>, plan: &ChunkPlan) -> &'a [wgpu::Buffer] {
        let sizes: Vec<u64> = plan.chunks.iter().map(|c| plan.flow_bytes(c)).collect();
        if scratch.len() != sizes.len() || scratch.iter().zip(&sizes).any(|(b, &s)| b.size() != s) {
            *scratch = sizes
                .iter()
                .map(|&bytes| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("flow chunk"), // [Tc, H, W, 2] f32
                        size: bytes,
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    })
                })
                .collect();
        }
        scratch
    }

    fn storage_init(&self, label: &str, bytes: &[u8], extra: wgpu::BufferUsages) -> wgpu::Buffer {
        // Zero-sized bindings are invalid; an empty table gets one unused element.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 32];
            &padded[..]
        } else {
            bytes
        };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | extra,
        })
    }

    fn run(&self, tracks: &[TrackPoints], size: ClipSize, read_back: bool) -> Result<Run, GpuFlowError> {
        let kernels = self.kernels()?;
        let sparse = sparse_displacement(tracks, size)?;
        let tables = SplatTables::build(&sparse, kernels.exact);
        let plan = ChunkPlan::new(size, &self.device.limits()).map_err(GpuFlowError::Device)?;
        let device = &self.device;

        let oom_scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation_scope = device.push_error_scope(wgpu::ErrorFilter::Validation);

        // [T, H, W] packed RGBA8
        let rgba = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("flow rgba"),
            size: plan.rgba_bytes().max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let frames =
            self.storage_init("flow frames", bytemuck::cast_slice(&tables.frames), wgpu::BufferUsages::empty());
        let splats =
            self.storage_init("flow splats", bytemuck::cast_slice(&tables.splats), wgpu::BufferUsages::empty());
        let weights = self.storage_init("flow weights", &tables.weights, wgpu::BufferUsages::empty());
        let max_norm = self.storage_init("flow max norm", &0u32.to_le_bytes(), wgpu::BufferUsages::COPY_SRC);

        let mut scratch = self.flow_scratch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let flows = self.flow_buffers(&mut scratch, &plan);

        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flow") });
        let mut colour_groups = Vec::with_capacity(plan.chunks.len());
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("flow splat"), timestamp_writes: None });
            pass.set_pipeline(&kernels.splat);
            for (chunk, flow) in plan.chunks.iter().zip(flows) {
                let binding = plan.rgba_binding(chunk);
                let params = Params {
                    width: size.width as u32,
                    height: size.height as u32,
                    frame_base: chunk.start as u32,
                    rgba_base: binding.base,
                };
                let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("flow params"),
                    contents: bytemuck::bytes_of(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
                let splat_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("flow splat"),
                    layout: &kernels.splat_layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: frames.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 2, resource: splats.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 3, resource: weights.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 4, resource: flow.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 5, resource: max_norm.as_entire_binding() },
                    ],
                });
                colour_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("flow colour"),
                    layout: &kernels.colour_layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: flow.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 2, resource: max_norm.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 3, resource: self.wheel.as_entire_binding() },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &rgba,
                                offset: binding.offset,
                                size: wgpu::BufferSize::new(binding.size),
                            }),
                        },
                    ],
                }));
                pass.set_bind_group(0, &splat_group, &[]);
                pass.dispatch_workgroups(plan.groups_xy[0], plan.groups_xy[1], chunk.len() as u32);
            }
        }
        {
            // A separate pass: every chunk's norms must be in before any colour.
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("flow colour"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&kernels.colour);
            for (chunk, group) in plan.chunks.iter().zip(&colour_groups) {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(plan.groups_xy[0], plan.groups_xy[1], chunk.len() as u32);
            }
        }

        let max_staging = readback::staging(device, "flow max norm readback", 4);
        encoder.copy_buffer_to_buffer(&max_norm, 0, &max_staging, 0, 4);
        let mut staged = vec![max_staging];
        if read_back {
            for (chunk, flow) in plan.chunks.iter().zip(flows) {
                let staging = readback::staging(device, "flow readback", plan.flow_bytes(chunk));
                encoder.copy_buffer_to_buffer(flow, 0, &staging, 0, flow.size());
                staged.push(staging);
            }
            let staging = readback::staging(device, "flow rgba readback", rgba.size());
            encoder.copy_buffer_to_buffer(&rgba, 0, &staging, 0, rgba.size());
            staged.push(staging);
        }
        self.queue.submit([encoder.finish()]);
        drop(scratch);

        let staged_refs: Vec<&wgpu::Buffer> = staged.iter().collect();
        let mapped = readback::request(&staged_refs);
        let waited = device.poll(wgpu::PollType::wait_indefinitely());
        let validation = pollster::block_on(validation_scope.pop());
        let oom = pollster::block_on(oom_scope.pop());
        if let Some(e) = validation.or(oom) {
            return Err(GpuFlowError::Device(e.to_string()));
        }
        waited.map_err(|e| GpuFlowError::Device(format!("waiting for the flow shaders: {e}")))?;
        let mut bytes = readback::finish(&staged_refs, mapped)?.into_iter();

        let max_bits = bytes.next().and_then(|b| le_u32s(&b).next()).unwrap_or(0);
        let (flow, rgba_values) = if read_back {
            let mut flow = Vec::with_capacity(size.frames * size.pixels() * 2);
            for _ in &plan.chunks {
                let chunk = bytes.next().unwrap_or_default();
                flow.extend(le_u32s(&chunk).map(f32::from_bits));
            }
            let colours: Vec<u32> =
                bytes.next().map(|b| le_u32s(&b).take(size.frames * size.pixels()).collect()).unwrap_or_default();
            (Some(flow), Some(colours))
        } else {
            (None, None)
        };
        if flow.as_ref().is_some_and(|f| f.len() != size.frames * size.pixels() * 2) {
            return Err(GpuFlowError::Device("the flow readback has the wrong length".into()));
        }
        if rgba_values.as_ref().is_some_and(|c| c.len() != size.frames * size.pixels()) {
            return Err(GpuFlowError::Device("the colour readback has the wrong length".into()));
        }
        Ok(Run {
            field: GpuMotionField { size, max_norm: f32::from_bits(max_bits), rgba },
            boxes: tables.boxes,
            flow,
            rgba: rgba_values,
        })
    }
}
