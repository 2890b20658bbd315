//! The motion field's colours on the GPU (wgpu compute shader `shaders/flow_colour.wgsl`).
//!
//! CONTRACT (stable API; the studio codes against it):
//! - `GpuFlow::new()` opens a headless device; `GpuFlow::from_device` shares the studio's.
//! - `motion_field` returns the same `MotionField` as the CPU path, bit for bit (read back).
//! - `compute_on_device` leaves the colours on the GPU as packed RGBA8 for live display.
//!
//! Design: the flow itself is the CPU's (sparse displacement and the sparse Gaussian filter take
//! a few milliseconds even at Tora's 49x480x720, and computing it on the CPU makes bad input fail
//! exactly as on the CPU path and the flow identical by construction); it is uploaded in frame
//! chunks and the shader maps it to colours. WGSL's division and square root are not correctly
//! rounded and a device may fuse multiply-adds, so the shader marks the few pixels whose level it
//! cannot guarantee (alpha 254) and `motion_field` recomputes those with the CPU formula.

mod chunks;
mod kernels;
mod readback;

use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::colour::{colour_wheel, unit_wheel, wheel_colour};
use super::{gaussian_filter, sparse_displacement, ClipSize, FlowField, FlowRgb, MotionField, TrackPoints};
use chunks::ChunkPlan;
use kernels::Kernels;

/// Alpha of a colour the shader could not guarantee to be the CPU's (see the module docs).
const UNSURE_ALPHA: u32 = 254;

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
    /// `[T, H, W]` packed RGBA8 (`r | g << 8 | b << 16 | alpha << 24`), usage STORAGE | COPY_SRC.
    /// Alpha is 255, or 254 where the colour may be a level off the CPU's (rare; invisible).
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
    /// How many pixels the last `motion_field` recomputed on the CPU.
    recomputed: std::sync::atomic::AtomicUsize,
}

/// What a run leaves behind besides the colours.
struct Run {
    field: GpuMotionField,
    flow: FlowField,
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
        // The adapter's own limits allow the largest bindings.
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tora-studio flow"),
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
        GpuFlow { device, queue, kernels, wheel, flow_scratch: Mutex::new(Vec::new()), recomputed: Default::default() }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Whether `motion_field` reproduces the CPU path exactly: always, on every device (the
    /// colours the shader cannot guarantee are recomputed on the CPU).
    pub fn is_exact(&self) -> bool {
        self.kernels.is_ok()
    }

    /// How many pixels the last [`GpuFlow::motion_field`] recomputed on the CPU because the
    /// shader could not guarantee their level.
    pub fn last_recomputed(&self) -> usize {
        self.recomputed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The whole flow procedure, colours on the GPU, read back into the CPU types.
    pub fn motion_field(&self, tracks: Vec<TrackPoints>, size: ClipSize) -> Result<MotionField, GpuFlowError> {
        let run = self.run(&tracks, size, true)?;
        let Some(rgba) = run.rgba else {
            return Err(GpuFlowError::Device("the readback is missing".into()));
        };
        let (n, w) = (size.pixels(), size.width);
        let mut planes = vec![0u8; size.frames * 3 * n];
        let unit = unit_wheel(&colour_wheel());
        let denom = run.field.max_norm + f32::EPSILON;
        let mut recomputed = 0;
        if n > 0 {
            for (t, (frame, colours)) in planes.chunks_exact_mut(3 * n).zip(rgba.chunks_exact(n)).enumerate() {
                for (i, &packed) in colours.iter().enumerate() {
                    let rgb = if packed >> 24 == UNSURE_ALPHA {
                        recomputed += 1;
                        let [dx, dy] = run.flow.at(t, i / w, i % w);
                        wheel_colour(&unit, dx / denom, dy / denom)
                    } else {
                        [packed as u8, (packed >> 8) as u8, (packed >> 16) as u8]
                    };
                    frame[i] = rgb[0];
                    frame[n + i] = rgb[1];
                    frame[2 * n + i] = rgb[2];
                }
            }
        }
        self.recomputed.store(recomputed, std::sync::atomic::Ordering::Relaxed);
        let max_norm = run.field.max_norm;
        Ok(MotionField { points: tracks, flow: run.flow, rgb: FlowRgb { size, data: planes, max_norm } })
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
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
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
        let flow_field = gaussian_filter(&sparse_displacement(tracks, size)?);
        let max_norm = flow_field.max_norm();
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
        // The shader divides by exactly the CPU's `max_norm + eps`.
        let denom = (max_norm + f32::EPSILON).to_bits();
        let denom = self.storage_init("flow denominator", &denom.to_le_bytes(), wgpu::BufferUsages::empty());

        let mut scratch = self.flow_scratch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let flows = self.flow_buffers(&mut scratch, &plan);

        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flow") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("flow colour"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&kernels.colour);
            for (chunk, flow) in plan.chunks.iter().zip(flows) {
                self.queue.write_buffer(flow, 0, bytemuck::cast_slice(&dense_frames(&flow_field, chunk.clone())));
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
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("flow colour"),
                    layout: &kernels.colour_layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: flow.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 2, resource: denom.as_entire_binding() },
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
                });
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(plan.groups_xy[0], plan.groups_xy[1], chunk.len() as u32);
            }
        }

        let mut staged = Vec::new();
        if read_back {
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
        waited.map_err(|e| GpuFlowError::Device(format!("waiting for the flow shader: {e}")))?;
        let mut bytes = readback::finish(&staged_refs, mapped)?.into_iter();
        let rgba_values: Option<Vec<u32>> =
            bytes.next().map(|b| le_u32s(&b).take(size.frames * size.pixels()).collect());
        if rgba_values.as_ref().is_some_and(|c| c.len() != size.frames * size.pixels()) {
            return Err(GpuFlowError::Device("the colour readback has the wrong length".into()));
        }
        Ok(Run { field: GpuMotionField { size, max_norm, rgba }, flow: flow_field, rgba: rgba_values })
    }
}

/// Frames `frames` of the flow as dense `[Tc, H, W, 2]` f32 (what a chunk's buffer holds).
fn dense_frames(flow: &FlowField, frames: std::ops::Range<usize>) -> Vec<f32> {
    let (h, w) = (flow.size.height, flow.size.width);
    let mut dense = vec![0.0f32; frames.len() * h * w * 2];
    for (k, frame) in flow.frames[frames].iter().enumerate() {
        for span in &frame.spans {
            let at = ((k * h + span.y) * w + span.x0) * 2;
            for (d, v) in dense[at..at + span.len() * 2].chunks_exact_mut(2).zip(frame.span_values(span)) {
                d.copy_from_slice(v);
            }
        }
    }
    dense
}
