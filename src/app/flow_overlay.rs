//! The live motion field over the canvas: the exact model input for the current frame.
//!
//! Colours come from the GPU flow path (`flow::gpu`, on eframe's own device) when it works,
//! else from the CPU reference path on a worker thread. Either way they end up as packed RGBA8
//! `[T, H, W]` in a storage buffer that `shaders/flow_overlay.wgsl` draws in an egui_wgpu paint
//! callback. Without wgpu (or for clips too big for one buffer) a frame is shown as a texture.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use eframe::egui;
use eframe::egui_wgpu::{self, wgpu};
use wgpu::util::DeviceExt;

use crate::flow::gpu::GpuFlow;
use crate::flow::{motion_field_cpu, ClipSize, TrackPoints};
use crate::trajectory::Scene;

/// Where the displayed colours came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSource {
    Gpu,
    Cpu,
}

struct Job {
    generation: u64,
    tracks: Vec<TrackPoints>,
    size: ClipSize,
}

struct JobResult {
    generation: u64,
    size: ClipSize,
    packed: Result<Vec<u32>, String>,
}

/// A computed field ready to display.
struct Field {
    generation: u64,
    size: ClipSize,
    source: FlowSource,
    /// CPU colours (for the texture fallback and the buffer upload).
    packed: Option<Arc<Vec<u32>>>,
    /// Colours on the GPU, with an id that changes whenever the buffer does.
    buffer: Option<(u64, wgpu::Buffer)>,
}

pub struct FlowOverlay {
    requested: Option<(Vec<TrackPoints>, ClipSize)>,
    generation: u64,
    jobs: Option<Sender<Job>>,
    results: Option<Receiver<JobResult>>,
    gpu: Option<GpuFlow>,
    gpu_unavailable: Option<String>,
    field: Option<Field>,
    error: Option<String>,
    next_buffer_id: u64,
    texture: Option<(egui::TextureHandle, u64, usize)>,
}

/// Packs `[T, 3, H, W]` colours into `[T, H, W]` RGBA8 words, as the GPU path lays them out.
fn pack_rgb(rgb: &[u8], size: ClipSize) -> Vec<u32> {
    let n = size.pixels();
    let mut out = Vec::with_capacity(size.frames * n);
    for t in 0..size.frames {
        let planes = &rgb[t * 3 * n..(t + 1) * 3 * n];
        out.extend(
            (0..n)
                .map(|i| planes[i] as u32 | (planes[n + i] as u32) << 8 | (planes[2 * n + i] as u32) << 16 | 255 << 24),
        );
    }
    out
}

/// Sampled positions of every motion track that has points (regions and the camera expanded;
/// hidden ones included: the model sees them).
pub fn flow_input(scene: &Scene) -> Result<Vec<TrackPoints>, String> {
    scene
        .motion_tracks()
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|t| !t.points.is_empty())
        .map(|t| {
            t.sample(scene.frames, scene.width, scene.height)
                .map(|points| TrackPoints { name: t.name.clone(), points })
                .map_err(|e| e.to_string())
        })
        .collect()
}

impl FlowOverlay {
    pub fn new(render_state: Option<&egui_wgpu::RenderState>) -> Self {
        FlowOverlay {
            requested: None,
            generation: 0,
            jobs: None,
            results: None,
            gpu: render_state.map(|rs| GpuFlow::from_device(rs.device.clone(), rs.queue.clone())),
            gpu_unavailable: None,
            field: None,
            error: None,
            next_buffer_id: 1,
            texture: None,
        }
    }

    /// Recomputes the field when the scene's motion changed, and collects finished work.
    pub fn update(&mut self, ctx: &egui::Context, scene: &Scene, render_state: Option<&egui_wgpu::RenderState>) {
        self.collect(render_state);
        let tracks = match flow_input(scene) {
            Ok(t) => t,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let size = ClipSize::of(scene);
        let unchanged = self.requested.as_ref().is_some_and(|(t, s)| *s == size && same_points(t, &tracks));
        if unchanged {
            return;
        }
        self.requested = Some((tracks.clone(), size));
        self.generation += 1;
        self.error = None;
        if tracks.is_empty() {
            self.field = None;
            return;
        }
        if self.try_gpu(&tracks, size) {
            return;
        }
        self.send_to_worker(ctx, Job { generation: self.generation, tracks, size });
    }

    /// The GPU path: computed on eframe's device within this frame. False when unavailable.
    fn try_gpu(&mut self, tracks: &[TrackPoints], size: ClipSize) -> bool {
        if self.gpu_unavailable.is_some() {
            return false;
        }
        let Some(gpu) = &self.gpu else {
            return false;
        };
        match gpu.compute_on_device(tracks, size) {
            Ok(field) => {
                let id = self.next_buffer_id;
                self.next_buffer_id += 1;
                self.field = Some(Field {
                    generation: self.generation,
                    size: field.size,
                    source: FlowSource::Gpu,
                    packed: None,
                    buffer: Some((id, field.rgba)),
                });
                self.texture = None;
                true
            }
            Err(e) => {
                tracing::info!("GPU flow path unavailable, using the CPU path: {e}");
                self.gpu_unavailable = Some(e.to_string());
                false
            }
        }
    }

    fn send_to_worker(&mut self, ctx: &egui::Context, job: Job) {
        if self.jobs.is_none() {
            let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
            let (result_tx, result_rx) = crossbeam_channel::unbounded::<JobResult>();
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new().name("flow-cpu".into()).spawn(move || {
                while let Ok(mut job) = job_rx.recv() {
                    // Only the newest request matters.
                    while let Ok(newer) = job_rx.try_recv() {
                        job = newer;
                    }
                    let packed = motion_field_cpu(job.tracks, job.size)
                        .map(|f| pack_rgb(&f.rgb.data, job.size))
                        .map_err(|e| e.to_string());
                    if result_tx.send(JobResult { generation: job.generation, size: job.size, packed }).is_err() {
                        break;
                    }
                    ctx.request_repaint();
                }
            });
            if let Err(e) = spawned {
                self.error = Some(format!("cannot start the flow worker: {e}"));
                return;
            }
            self.jobs = Some(job_tx);
            self.results = Some(result_rx);
        }
        if let Some(jobs) = &self.jobs {
            if jobs.send(job).is_err() {
                self.error = Some("the flow worker stopped".into());
                self.jobs = None;
            }
        }
    }

    fn collect(&mut self, render_state: Option<&egui_wgpu::RenderState>) {
        let Some(results) = &self.results else {
            return;
        };
        let Some(result) = results.try_iter().last() else {
            return;
        };
        if result.generation != self.generation {
            return; // Stale: a newer job is on its way.
        }
        match result.packed {
            Ok(packed) => self.show_cpu_field(result.generation, result.size, packed, render_state),
            Err(e) => self.error = Some(e),
        }
    }

    fn show_cpu_field(
        &mut self,
        generation: u64,
        size: ClipSize,
        packed: Vec<u32>,
        render_state: Option<&egui_wgpu::RenderState>,
    ) {
        let bytes = (packed.len() * 4) as u64;
        let buffer = render_state
            .filter(|rs| {
                bytes <= rs.device.limits().max_storage_buffer_binding_size
                    && bytes <= rs.device.limits().max_buffer_size
            })
            .map(|rs| {
                let id = self.next_buffer_id;
                self.next_buffer_id += 1;
                let buffer = rs.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("flow colours (CPU path)"),
                    contents: bytemuck::cast_slice(&packed),
                    usage: wgpu::BufferUsages::STORAGE,
                });
                (id, buffer)
            });
        self.field = Some(Field { generation, size, source: FlowSource::Cpu, packed: Some(Arc::new(packed)), buffer });
        self.texture = None;
    }

    /// Blocks until the requested field is computed (tests and screenshots), at most `timeout`.
    pub fn wait(&mut self, timeout: std::time::Duration, render_state: Option<&egui_wgpu::RenderState>) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.is_current() {
                return true;
            }
            if let Some(results) = &self.results {
                if let Ok(result) = results.recv_timeout(std::time::Duration::from_millis(50)) {
                    if result.generation == self.generation {
                        match result.packed {
                            Ok(packed) => self.show_cpu_field(result.generation, result.size, packed, render_state),
                            Err(e) => self.error = Some(e),
                        }
                    }
                }
            } else {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        self.is_current()
    }

    /// Whether the displayed field matches the latest request.
    fn is_current(&self) -> bool {
        self.error.is_some()
            || self.requested.as_ref().is_some_and(|(t, _)| t.is_empty())
            || self.field.as_ref().is_some_and(|f| f.generation == self.generation)
    }

    pub fn is_computing(&self) -> bool {
        !self.is_current()
    }

    /// One line for the status bar.
    pub fn status(&self) -> String {
        if let Some(e) = &self.error {
            return format!("flow: {e}");
        }
        match &self.field {
            Some(f) if f.source == FlowSource::Gpu => "flow: GPU".into(),
            Some(_) => match &self.gpu_unavailable {
                Some(_) => "flow: CPU (GPU path unavailable)".into(),
                None => "flow: CPU".into(),
            },
            None if self.requested.as_ref().is_some_and(|(t, _)| t.is_empty()) => "flow: no tracks".into(),
            None => "flow: computing...".into(),
        }
    }

    /// Draws frame `frame` of the field over `rect` with opacity `blend`.
    pub fn paint(
        &mut self,
        ui: &egui::Ui,
        rect: egui::Rect,
        frame: usize,
        blend: f32,
        render_state: Option<&egui_wgpu::RenderState>,
    ) {
        let Some(field) = &self.field else {
            return;
        };
        let frame = frame.min(field.size.frames.saturating_sub(1));
        if let (Some((id, buffer)), Some(rs)) = (&field.buffer, render_state) {
            let ppp = ui.ctx().pixels_per_point();
            let params = OverlayParams {
                rect_origin: [rect.min.x * ppp, rect.min.y * ppp],
                rect_size: [rect.width() * ppp, rect.height() * ppp],
                field_size: [field.size.width as u32, field.size.height as u32],
                frame: frame as u32,
                target_srgb: rs.target_format.is_srgb() as u32,
                blend,
                _pad: [0.0; 3],
            };
            let callback =
                OverlayCallback { buffer_id: *id, buffer: buffer.clone(), params, target_format: rs.target_format };
            ui.painter().add(egui_wgpu::Callback::new_paint_callback(rect, callback));
            return;
        }
        let Some(packed) = &field.packed else {
            return;
        };
        let generation = field.generation;
        let stale = self.texture.as_ref().is_none_or(|(_, g, f)| *g != generation || *f != frame);
        if stale {
            let n = field.size.pixels();
            let words = &packed[frame * n..(frame + 1) * n];
            let pixels: Vec<egui::Color32> =
                words.iter().map(|w| egui::Color32::from_rgb(*w as u8, (*w >> 8) as u8, (*w >> 16) as u8)).collect();
            let image = egui::ColorImage {
                size: [field.size.width, field.size.height],
                source_size: egui::vec2(field.size.width as f32, field.size.height as f32),
                pixels,
            };
            match &mut self.texture {
                Some((handle, g, f)) => {
                    handle.set(image, egui::TextureOptions::LINEAR);
                    (*g, *f) = (generation, frame);
                }
                None => {
                    self.texture =
                        Some((ui.ctx().load_texture("flow", image, egui::TextureOptions::LINEAR), generation, frame))
                }
            }
        }
        if let Some((handle, _, _)) = &self.texture {
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            ui.painter().image(handle.id(), rect, uv, egui::Color32::from_white_alpha((blend * 255.0) as u8));
        }
    }
}

fn same_points(a: &[TrackPoints], b: &[TrackPoints]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.points == y.points)
}

/// The shader's uniform block (layout matches `Params` in flow_overlay.wgsl: 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct OverlayParams {
    rect_origin: [f32; 2],
    rect_size: [f32; 2],
    field_size: [u32; 2],
    frame: u32,
    target_srgb: u32,
    blend: f32,
    _pad: [f32; 3],
}

struct OverlayCallback {
    buffer_id: u64,
    buffer: wgpu::Buffer,
    params: OverlayParams,
    target_format: wgpu::TextureFormat,
}

/// The pipeline and per-field bind group, kept in egui_wgpu's callback resources.
struct OverlayResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    bind_group: Option<(u64, wgpu::BindGroup)>,
}

impl OverlayResources {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("flow overlay"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/flow_overlay.wgsl").into()),
        });
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty,
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("flow overlay"),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    1,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("flow overlay"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("flow overlay"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("flow overlay params"),
            size: std::mem::size_of::<OverlayParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        OverlayResources { pipeline, layout, uniforms, bind_group: None }
    }
}

impl egui_wgpu::CallbackTrait for OverlayCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if !resources.contains::<OverlayResources>() {
            resources.insert(OverlayResources::new(device, self.target_format));
        }
        if let Some(res) = resources.get_mut::<OverlayResources>() {
            queue.write_buffer(&res.uniforms, 0, bytemuck::bytes_of(&self.params));
            if res.bind_group.as_ref().is_none_or(|(id, _)| *id != self.buffer_id) {
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("flow overlay"),
                    layout: &res.layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: res.uniforms.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: self.buffer.as_entire_binding() },
                    ],
                });
                res.bind_group = Some((self.buffer_id, group));
            }
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<OverlayResources>() else {
            return;
        };
        let Some((_, group)) = &res.bind_group else {
            return;
        };
        pass.set_pipeline(&res.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.draw(0..3, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_matches_the_gpu_layout() {
        let size = ClipSize { frames: 2, height: 1, width: 2 };
        // [T=2][C=3][H=1][W=2]
        let rgb = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let packed = pack_rgb(&rgb, size);
        assert_eq!(packed[0], 1 | 3 << 8 | 5 << 16 | 255 << 24);
        assert_eq!(packed[3], 8 | 10 << 8 | 12 << 16 | 255 << 24);
    }
}
