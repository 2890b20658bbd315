//! CogVideoX's 3D causal VAE (`AutoencoderKLCogVideoX`): 8× spatial, 4× temporal compression to
//! 16 latent channels. Tora encodes both the video and its colour-wheel flow video with it, and
//! decodes the final latents.
//!
//! Memory stays bounded the way the reference bounds it: frames go through the coder in small
//! batches (8 frames to encode, 2 latent frames to decode, the first batch taking the remainder)
//! with causal-conv caches carried between them, and optional spatial tiling with overlap-blend.

pub mod batching;
pub mod causal_conv;
pub mod config;
pub mod decoder;
pub mod distribution;
pub mod downsample;
pub mod encoder;
pub mod group_norm;
pub mod nearest;
pub mod resnet;
pub mod spatial_norm;
pub mod tiling;
pub mod upsample;
pub mod weights;

use std::path::Path;

use burn::tensor::Tensor;

pub use config::VaeConfig;
pub use distribution::LatentDist;
pub use tiling::Tiling;

use batching::frame_batches;
use causal_conv::ConvCache;
use decoder::Decoder3d;
use encoder::Encoder3d;
use tiling::{tiled, TileAxis};

use crate::model::device::ComputeDevice;
use crate::model::load::{read_config, Checkpoint, ComponentDir, LoadError, TensorLoader};

/// Frames per encoder batch (diffusers' `num_sample_frames_batch_size`).
pub const SAMPLE_FRAMES_BATCH: usize = 8;
/// Latent frames per decoder batch (diffusers' `num_latent_frames_batch_size`).
pub const LATENT_FRAMES_BATCH: usize = 2;

/// An untiled decode on a device with a per-tensor limit runs only while its largest tensor
/// stays within 1/this of the limit: on an H200 (2 GiB cap) an untiled f16 decode at 480x720,
/// whose largest tensor (1.95 GB) fits the cap, still failed on a 2.83 GB allocation (cause in
/// the wgpu memory pool not yet pinned down).
pub const UNTILED_LIMIT_SHARE: usize = 2;

/// A video or latent tensor that does not fit the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VaeInputError {
    #[error("{what} has {found} channels; this VAE expects {expected}")]
    Channels { what: &'static str, expected: usize, found: usize },
    #[error("{what} has an empty dimension: shape {shape:?}")]
    Empty { what: &'static str, shape: [usize; 5] },
}

#[derive(Debug, Clone)]
pub struct AutoencoderKLCogVideoX {
    pub encoder: Encoder3d,
    pub decoder: Decoder3d,
    pub config: VaeConfig,
    tiling: Option<Tiling>,
    /// What the device allows: the untiled decode falls back to tiles rather than exceed it.
    limits: TensorLimits,
}

/// Which coder a size estimate is for: the encoder reads videos, the decoder latents.
#[derive(Debug, Clone, Copy)]
enum Pass {
    Encode,
    Decode,
}

/// The device's largest single tensor (if limited) and the compute dtype's size.
#[derive(Debug, Clone, Copy)]
struct TensorLimits {
    max_bytes: Option<usize>,
    bytes_per_value: usize,
}

impl TensorLimits {
    fn of(device: &ComputeDevice) -> Self {
        TensorLimits { max_bytes: device.max_tensor_bytes(), bytes_per_value: device.dtype().size() }
    }
}

impl AutoencoderKLCogVideoX {
    /// `dir`: a pipeline folder holding `vae/`, or the `vae/` folder itself.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<(Self, VaeConfig), LoadError> {
        let component = ComponentDir::find(dir, "vae", &["AutoencoderKLCogVideoX"])?;
        let config: VaeConfig = read_config(&component.config_path())?;
        let ckpt = Checkpoint::open_dir(&component.dir)?;
        let model = Self::from_checkpoint_at(config.clone(), &ckpt, device, &component.config_path())?;
        Ok((model, config))
    }

    /// Builds the model from an opened checkpoint (every key checked, see `TensorLoader`).
    pub fn from_checkpoint(config: VaeConfig, ckpt: &Checkpoint, device: &ComputeDevice) -> Result<Self, LoadError> {
        let source = ckpt.source().to_path_buf();
        Self::from_checkpoint_at(config, ckpt, device, &source)
    }

    fn from_checkpoint_at(
        config: VaeConfig,
        ckpt: &Checkpoint,
        device: &ComputeDevice,
        config_path: &Path,
    ) -> Result<Self, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: config_path.into(), reason })?;
        let mut loader = TensorLoader::new(ckpt, device);
        let encoder = Encoder3d::load(&mut loader, "encoder", &config);
        let decoder = Decoder3d::load(&mut loader, "decoder", &config);
        loader.finish()?;
        Ok(AutoencoderKLCogVideoX { encoder, decoder, config, tiling: None, limits: TensorLimits::of(device) })
    }

    /// A model of `config`'s shapes with random weights (memory and speed measurements only).
    pub fn random(config: VaeConfig, device: &ComputeDevice) -> Result<Self, String> {
        config.validate()?;
        let mut source = weights::RandomWeights::new(device);
        let encoder = Encoder3d::load(&mut source, "encoder", &config);
        let decoder = Decoder3d::load(&mut source, "decoder", &config);
        Ok(AutoencoderKLCogVideoX { encoder, decoder, config, tiling: None, limits: TensorLimits::of(device) })
    }

    /// The latent scale the pipeline multiplies encoded latents by (and divides by before decoding).
    pub fn scaling_factor(&self) -> f64 {
        self.config.scaling_factor
    }

    /// Spatial tiling: off by default; `Some(Tiling::from_config(..))` is diffusers' `enable_tiling()`.
    pub fn set_tiling(&mut self, tiling: Option<Tiling>) {
        self.tiling = tiling;
    }

    pub fn tiling(&self) -> Option<Tiling> {
        self.tiling
    }

    /// Bytes of the largest tensor an untiled decode of a `[b, latent, F, h, w]` latent makes
    /// (its longest frame batch at full resolution).
    pub fn untiled_decode_peak_tensor_bytes(&self, latent: [usize; 5]) -> usize {
        self.untiled_peak_tensor_bytes(Pass::Decode, latent)
    }

    /// Bytes of the largest tensor an untiled encode of a `[b, 3, T, H, W]` video makes (its
    /// longest frame batch at full resolution).
    pub fn untiled_encode_peak_tensor_bytes(&self, video: [usize; 5]) -> usize {
        self.untiled_peak_tensor_bytes(Pass::Encode, video)
    }

    /// The tiling [`Self::decode`] uses for this latent: the one set, else the config's when an
    /// untiled pass would make a tensor larger than [`UNTILED_LIMIT_SHARE`] of the device's
    /// per-tensor limit (wgpu: at most 2 GiB; an f32 decode at 480x720 makes 3.9 GB), with
    /// tiles halved while one tile's pass still would; else none.
    pub fn decode_tiling(&self, latent: [usize; 5]) -> Option<Tiling> {
        self.tiling.or_else(|| self.tiling_within_limit(Pass::Decode, latent))
    }

    /// The tiling [`Self::encode`] uses for this video (as [`Self::decode_tiling`]).
    pub fn encode_tiling(&self, video: [usize; 5]) -> Option<Tiling> {
        self.tiling.or_else(|| self.tiling_within_limit(Pass::Encode, video))
    }

    /// `b` × the largest tensor of the pass's longest frame batch, in bytes.
    fn untiled_peak_tensor_bytes(&self, pass: Pass, input: [usize; 5]) -> usize {
        let [b, _, t, h, w] = input;
        let longest = |batch| frame_batches(t, batch).iter().map(|r| r.len()).max().unwrap_or(0);
        let values = match pass {
            Pass::Encode => self.encoder.largest_tensor_len(longest(SAMPLE_FRAMES_BATCH), h, w),
            Pass::Decode => self.decoder.largest_tensor_len(longest(LATENT_FRAMES_BATCH), h, w),
        };
        b * values * self.limits.bytes_per_value
    }

    /// None when the untiled pass fits what a pass may use; else the config's tiles, halved
    /// while one tile's pass does not fit (devices with small binding limits, such as
    /// lavapipe), down to 4 latent pixels a side.
    fn tiling_within_limit(&self, pass: Pass, input: [usize; 5]) -> Option<Tiling> {
        let allowed = self.limits.max_bytes? / UNTILED_LIMIT_SHARE;
        if self.untiled_peak_tensor_bytes(pass, input) <= allowed {
            return None;
        }
        let [b, c, t, h, w] = input;
        let tile_bytes = |tiling: &Tiling| {
            let (tile_h, tile_w) = match pass {
                Pass::Encode => (tiling.tile_sample_min_height, tiling.tile_sample_min_width),
                Pass::Decode => (tiling.tile_latent_min_height, tiling.tile_latent_min_width),
            };
            self.untiled_peak_tensor_bytes(pass, [b, c, t, tile_h.min(h), tile_w.min(w)])
        };
        let min_side = 4 * self.config.spatial_ratio();
        let mut tiling = Tiling::from_config(&self.config);
        while tile_bytes(&tiling) > allowed
            && tiling.tile_sample_min_height / 2 >= min_side
            && tiling.tile_sample_min_width / 2 >= min_side
        {
            let (h, w) = (tiling.tile_sample_min_height / 2, tiling.tile_sample_min_width / 2);
            tiling = Tiling::with_sample_tile(&self.config, h, w);
        }
        Some(tiling)
    }

    /// Checks a `[b, 3, T, H, W]` video before [`Self::encode`].
    pub fn check_video(&self, video: &Tensor<5>) -> Result<(), VaeInputError> {
        check(video.dims(), "the video", self.config.in_channels)
    }

    /// Checks a `[b, latent, F, h, w]` latent before [`Self::decode`].
    pub fn check_latent(&self, z: &Tensor<5>) -> Result<(), VaeInputError> {
        check(z.dims(), "the latent", self.config.latent_channels)
    }

    /// `encode(x).latent_dist` of `[b, 3, T, H, W]` in [-1, 1]; frame batches of 8 (first takes
    /// the remainder), tiled when tiling is on (or the device needs it: [`Self::encode_tiling`])
    /// and the frame exceeds a tile.
    pub fn encode(&self, video: Tensor<5>) -> LatentDist {
        let [_, _, _, h, w] = video.dims();
        let moments = match self.encode_tiling(video.dims()) {
            Some(t) if h > t.tile_sample_min_height || w > t.tile_sample_min_width => {
                let rows =
                    TileAxis::new(t.tile_sample_min_height, t.tile_latent_min_height, t.tile_overlap_factor_height);
                let cols = TileAxis::new(t.tile_sample_min_width, t.tile_latent_min_width, t.tile_overlap_factor_width);
                tiled(video, rows, cols, |tile| self.encode_batched(tile))
            }
            _ => self.encode_batched(video),
        };
        LatentDist::from_moments(moments)
    }

    /// [`Self::encode`] after [`Self::check_video`].
    pub fn try_encode(&self, video: Tensor<5>) -> Result<LatentDist, VaeInputError> {
        self.check_video(&video)?;
        Ok(self.encode(video))
    }

    /// `decode(z).sample`: `[b, latent, F, h, w]` (already divided by the scaling factor) ->
    /// frames `[b, 3, T, H, W]` in about [-1, 1]; batches of 2 latent frames, tiled when on (or
    /// when the device needs it: [`Self::decode_tiling`]).
    pub fn decode(&self, z: Tensor<5>) -> Tensor<5> {
        let [_, _, _, h, w] = z.dims();
        match self.decode_tiling(z.dims()) {
            Some(t) if h > t.tile_latent_min_height || w > t.tile_latent_min_width => {
                let rows =
                    TileAxis::new(t.tile_latent_min_height, t.tile_sample_min_height, t.tile_overlap_factor_height);
                let cols = TileAxis::new(t.tile_latent_min_width, t.tile_sample_min_width, t.tile_overlap_factor_width);
                tiled(z, rows, cols, |tile| self.decode_batched(tile))
            }
            _ => self.decode_batched(z),
        }
    }

    /// [`Self::decode`] after [`Self::check_latent`].
    pub fn try_decode(&self, z: Tensor<5>) -> Result<Tensor<5>, VaeInputError> {
        self.check_latent(&z)?;
        Ok(self.decode(z))
    }

    /// The encoder over frame batches with carried caches: moments `[b, 2·latent, F, h, w]`.
    fn encode_batched(&self, video: Tensor<5>) -> Tensor<5> {
        let frames = video.dims()[2];
        let mut cache = ConvCache::new();
        let parts: Vec<Tensor<5>> = frame_batches(frames, SAMPLE_FRAMES_BATCH)
            .into_iter()
            .map(|r| self.encoder.forward(video.clone().narrow(2, r.start, r.len()), &mut cache))
            .collect();
        Tensor::cat(parts, 2)
    }

    /// The decoder over latent frame batches with carried caches.
    fn decode_batched(&self, z: Tensor<5>) -> Tensor<5> {
        let frames = z.dims()[2];
        let mut cache = ConvCache::new();
        let parts: Vec<Tensor<5>> = frame_batches(frames, LATENT_FRAMES_BATCH)
            .into_iter()
            .map(|r| self.decoder.forward(z.clone().narrow(2, r.start, r.len()), &mut cache))
            .collect();
        Tensor::cat(parts, 2)
    }
}

fn check(shape: [usize; 5], what: &'static str, channels: usize) -> Result<(), VaeInputError> {
    if shape.contains(&0) {
        return Err(VaeInputError::Empty { what, shape });
    }
    if shape[1] != channels {
        return Err(VaeInputError::Channels { what, expected: channels, found: shape[1] });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{AutoencoderKLCogVideoX, TensorLimits, VaeConfig};
    use crate::model::{ComputeDevice, Precision};
    use crate::Backend;

    /// At Tora's 49x480x720 the largest tensor of an untiled decode is the first frame batch's
    /// (9 frames + 2 causal pad) 256-channel conv input at full resolution: 3 892 838 400 bytes
    /// in f32 — exactly the allocation wgpu refused on an H200. In f16 it is half, under wgpu's
    /// 2 GiB cap but over the half of it an untiled decode may use: both tile there.
    #[test]
    fn real_shape_decode_tiles_only_where_a_tensor_exceeds_the_device_limit() {
        let cpu = ComputeDevice::new(Backend::Cpu, Precision::F32).unwrap();
        let mut vae = AutoencoderKLCogVideoX::random(VaeConfig::default(), &cpu).unwrap();
        let latent = [1, 16, 13, 60, 90];
        assert_eq!(vae.untiled_decode_peak_tensor_bytes(latent), 256 * 11 * 480 * 720 * 4);
        assert_eq!(vae.untiled_decode_peak_tensor_bytes(latent), 3_892_838_400);
        assert!(vae.decode_tiling(latent).is_none(), "the CPU backend has no per-tensor limit");

        let wgpu_limit = Some(i32::MAX as usize);
        vae.limits = TensorLimits { max_bytes: wgpu_limit, bytes_per_value: 4 };
        assert!(vae.decode_tiling(latent).is_some(), "f32 on wgpu must tile at 480x720");
        assert!(vae.decode_tiling([1, 16, 13, 30, 45]).is_none(), "240x360 fits untiled");
        vae.limits = TensorLimits { max_bytes: wgpu_limit, bytes_per_value: 2 };
        assert_eq!(vae.untiled_decode_peak_tensor_bytes(latent), 1_946_419_200);
        assert!(vae.decode_tiling(latent).is_some(), "f16 at 480x720: over half the cap");
        assert!(vae.decode_tiling([1, 16, 13, 30, 45]).is_none());
        vae.limits = TensorLimits { max_bytes: None, bytes_per_value: 2 };
        assert!(vae.decode_tiling(latent).is_none(), "no limit, no tiling");

        // Encoding Tora's 49-frame flow video: the first batch (9 frames + 2 pad) of the first
        // down block's 128-channel conv input at full resolution, 1.95 GB in f32.
        let video = [1, 3, 49, 480, 720];
        vae.limits = TensorLimits { max_bytes: wgpu_limit, bytes_per_value: 4 };
        assert_eq!(vae.untiled_encode_peak_tensor_bytes(video), 128 * 11 * 480 * 720 * 4);
        assert!(vae.encode_tiling(video).is_some());
        assert!(vae.encode_tiling([1, 3, 49, 240, 360]).is_none());

        // A small binding limit (lavapipe's order): tiles shrink until one tile's pass fits.
        vae.limits = TensorLimits { max_bytes: Some(256 << 20), bytes_per_value: 4 };
        let tiling = vae.decode_tiling(latent).expect("tiles");
        assert!(tiling.tile_sample_min_height < 240, "{tiling:?}");
        let tile = [1, 16, 13, tiling.tile_latent_min_height, tiling.tile_latent_min_width];
        assert!(vae.untiled_decode_peak_tensor_bytes(tile) <= 128 << 20, "{tiling:?}");
        let tiling = vae.encode_tiling(video).expect("tiles");
        let tile = [1, 3, 49, tiling.tile_sample_min_height, tiling.tile_sample_min_width];
        assert!(vae.untiled_encode_peak_tensor_bytes(tile) <= 128 << 20, "{tiling:?}");
    }
}
