//! Copying GPU results back to the CPU: map every staging buffer, wait once, collect the bytes.

use std::sync::mpsc;
use std::time::Duration;

use super::GpuFlowError;

/// A MAP_READ buffer the size of `bytes`, for `copy_buffer_to_buffer`.
pub fn staging(device: &wgpu::Device, label: &str, bytes: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Requests the mapping of every buffer; call [`finish`] after waiting on the device.
pub fn request(buffers: &[&wgpu::Buffer]) -> mpsc::Receiver<Result<(), wgpu::BufferAsyncError>> {
    let (tx, rx) = mpsc::channel();
    for buffer in buffers {
        let tx = tx.clone();
        buffer.map_async(wgpu::MapMode::Read, .., move |result| {
            // The receiver only goes away when the caller has already failed.
            let _ = tx.send(result);
        });
    }
    rx
}

/// The mapped bytes of every buffer (the device must have been polled to completion).
pub fn finish(
    buffers: &[&wgpu::Buffer],
    mapped: mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
) -> Result<Vec<Vec<u8>>, GpuFlowError> {
    for _ in buffers {
        mapped
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| GpuFlowError::Device("a readback never completed".into()))?
            .map_err(|e| GpuFlowError::Device(format!("mapping a readback buffer: {e}")))?;
    }
    buffers
        .iter()
        .map(|buffer| {
            let bytes = buffer
                .get_mapped_range(..)
                .map_err(|e| GpuFlowError::Device(format!("reading a readback buffer: {e}")))?
                .to_vec();
            buffer.unmap();
            Ok(bytes)
        })
        .collect()
}
