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
        Ok(AutoencoderKLCogVideoX { encoder, decoder, config, tiling: None })
    }

    /// A model of `config`'s shapes with random weights (memory and speed measurements only).
    pub fn random(config: VaeConfig, device: &ComputeDevice) -> Result<Self, String> {
        config.validate()?;
        let mut source = weights::RandomWeights::new(device);
        let encoder = Encoder3d::load(&mut source, "encoder", &config);
        let decoder = Decoder3d::load(&mut source, "decoder", &config);
        Ok(AutoencoderKLCogVideoX { encoder, decoder, config, tiling: None })
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

    /// Checks a `[b, 3, T, H, W]` video before [`Self::encode`].
    pub fn check_video(&self, video: &Tensor<5>) -> Result<(), VaeInputError> {
        check(video.dims(), "the video", self.config.in_channels)
    }

    /// Checks a `[b, latent, F, h, w]` latent before [`Self::decode`].
    pub fn check_latent(&self, z: &Tensor<5>) -> Result<(), VaeInputError> {
        check(z.dims(), "the latent", self.config.latent_channels)
    }

    /// `encode(x).latent_dist` of `[b, 3, T, H, W]` in [-1, 1]; frame batches of 8 (first takes
    /// the remainder), tiled when tiling is on and the frame exceeds a tile.
    pub fn encode(&self, video: Tensor<5>) -> LatentDist {
        let [_, _, _, h, w] = video.dims();
        let moments = match self.tiling {
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
    /// frames `[b, 3, T, H, W]` in about [-1, 1]; batches of 2 latent frames, tiled when on.
    pub fn decode(&self, z: Tensor<5>) -> Tensor<5> {
        let [_, _, _, h, w] = z.dims();
        match self.tiling {
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
