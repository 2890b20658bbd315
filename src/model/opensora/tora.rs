//! Tora on STDiT3: a Trajectory Extractor (TE) turns the VAE-v1.2 latent of the flow video
//! (4 channels) into one motion feature map per temporal block, and a Motion-guidance Fuser
//! (MGF) per temporal block injects it into the modulated tokens before the temporal attention:
//! `h + GroupNorm(h)·γ(f) + β(f)` — the same fuser as Tora's CogVideoX variant
//! (`diffusers-version/tora/traj_module.py`).
//!
//! What is wired: STDiT3 calls a [`MotionFuser`] (`fuse(layer, h)`) in every temporal block; this
//! file provides one ([`ToraMotion`]) built from OpenSora-side TE/MGF weights. The authors did not
//! release Tora-on-OpenSora weights, so the key names are those of the CogVideoX release
//! (`traj_extractor.{conv_in,body.j.{bn1,block1,bn2,block2}}`, `fuser.i.{flow_gamma_spatial,
//! flow_gamma_temporal,flow_beta_spatial,flow_beta_temporal,flow_cond_norm}`) and the sizes are
//! read from the file. Without a file the TE/MGF are zero-initialised (MGF temporal convs = 0,
//! as Tora initialises them), so the model is exactly OpenSora 1.2. TE and MGF are the shared
//! `crate::model::tora` parts the CogVideoX transformer uses, sized for STDiT3.

use std::path::Path;

use burn::tensor::{Bool, Int, Tensor};

use super::stdit3::{InputError, Stdit3};
use super::Stdit3Config;
use crate::model::cogvideox::layers::WeightSource;
use crate::model::device::ComputeDevice;
use crate::model::load::{Checkpoint, LoadError, TensorLoader};
use crate::model::tora::trajectory_extractor::TeSizes;
use crate::model::tora::{FlowFeatures, Mgf, TrajExtractor};

/// Tora's motion guidance as STDiT3's temporal blocks see it: `fuse(layer, h)` receives the
/// modulated tokens of temporal block `layer` as `[(B T), C, H', W']` (before its temporal
/// attention) and returns them with the motion injected.
pub trait MotionFuser {
    fn fuse(&self, layer: usize, h: Tensor<4>) -> Tensor<4>;
}

impl<F: Fn(usize, Tensor<4>) -> Tensor<4>> MotionFuser for F {
    fn fuse(&self, layer: usize, h: Tensor<4>) -> Tensor<4> {
        self(layer, h)
    }
}

/// `FloatGroupNorm(32, C)` in every fuser.
pub const FUSER_GROUPS: usize = 32;

/// Zero-initialised TE/MGF, as Tora starts them: every weight 0 except the norms' scales and the
/// BatchNorms' running variance (1), so each fuser adds `GroupNorm(h)·0 + 0`: the identity.
struct ZeroInit {
    device: ComputeDevice,
}

impl WeightSource for ZeroInit {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        let one = key.ends_with(".running_var")
            || key.ends_with("bn1.weight")
            || key.ends_with("bn2.weight")
            || key.ends_with("flow_cond_norm.weight");
        let opts = (self.device.device(), self.device.dtype());
        if one {
            Tensor::ones(shape, opts)
        } else {
            Tensor::zeros(shape, opts)
        }
    }
    fn linear_weight(&mut self, _key: &str, d_out: usize, d_in: usize) -> Tensor<2> {
        Tensor::zeros([d_in, d_out], (self.device.device(), self.device.dtype()))
    }
    fn skip(&mut self, _key: &str) {}
}

/// TE + one MGF per temporal block (Tora's shared parts, `crate::model::tora`).
#[derive(Debug, Clone)]
pub struct ToraMotion {
    pub traj_extractor: TrajExtractor,
    pub fuser: Vec<Mgf>,
}

/// Sizes of an OpenSora-side TE/MGF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToraMotionSizes {
    /// Flow-latent channels (VAE v1.2: 4).
    pub latent_channels: usize,
    /// STDiT3's patch.
    pub patch_size: [usize; 3],
    /// TE feature width (Tora: 128).
    pub feature_channels: usize,
    /// Resnet blocks per temporal block (Tora: 2).
    pub blocks_per_layer: usize,
    /// Temporal blocks.
    pub layers: usize,
    /// STDiT3 hidden size.
    pub hidden_size: usize,
}

impl ToraMotionSizes {
    /// Tora's defaults on a given STDiT3.
    pub fn for_stdit3(config: &Stdit3Config) -> Self {
        ToraMotionSizes {
            latent_channels: config.in_channels,
            patch_size: config.patch_size,
            feature_channels: 128,
            blocks_per_layer: 2,
            layers: config.depth,
            hidden_size: config.hidden_size,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.hidden_size % 4 != 0 || self.hidden_size % FUSER_GROUPS != 0 {
            return Err(format!(
                "hidden size {} must be a multiple of 4 and of the fuser's {FUSER_GROUPS} groups",
                self.hidden_size
            ));
        }
        if self.blocks_per_layer == 0 || self.feature_channels == 0 {
            return Err("the trajectory extractor needs at least one block and one channel".into());
        }
        Ok(())
    }
}

impl ToraMotion {
    /// Zero-initialised TE/MGF (unit norms, zero convs): the fuser is the identity.
    pub fn zeros(sizes: ToraMotionSizes, device: &ComputeDevice) -> Result<Self, String> {
        sizes.validate()?;
        Ok(Self::build(sizes, &mut ZeroInit { device: device.clone() }))
    }

    fn build(sizes: ToraMotionSizes, src: &mut impl WeightSource) -> Self {
        let te = TeSizes {
            in_channels: sizes.latent_channels,
            patch: sizes.patch_size,
            features: sizes.feature_channels,
            blocks_per_layer: sizes.blocks_per_layer,
            layers: sizes.layers,
        };
        let traj_extractor = TrajExtractor::load(src, "traj_extractor", te);
        let fuser = (0..sizes.layers)
            .map(|i| Mgf::load(src, &format!("fuser.{i}"), sizes.feature_channels, sizes.hidden_size))
            .collect();
        ToraMotion { traj_extractor, fuser }
    }

    /// Loads TE/MGF weights (keys `traj_extractor.*`, `fuser.*`) for a given STDiT3; the feature
    /// width and blocks per layer are read from the file.
    pub fn from_checkpoint(
        config: &Stdit3Config,
        ckpt: &Checkpoint,
        device: &ComputeDevice,
    ) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::Config { path: ckpt.source().into(), reason };
        let f = match ckpt.shape("traj_extractor.conv_in.weight") {
            Some(&[f, _, _, _]) => f,
            _ => 128, // reported as missing / mismatched below
        };
        let blocks =
            ckpt.keys().filter(|k| k.starts_with("traj_extractor.body.") && k.ends_with(".block1.weight")).count();
        let layers = config.depth;
        if layers == 0 || blocks % layers != 0 || blocks == 0 {
            return Err(bad(format!(
                "{blocks} trajectory-extractor blocks do not split over {layers} temporal blocks"
            )));
        }
        let sizes = ToraMotionSizes {
            feature_channels: f,
            blocks_per_layer: blocks / layers,
            ..ToraMotionSizes::for_stdit3(config)
        };
        sizes.validate().map_err(bad)?;
        let mut ld = TensorLoader::new(ckpt, device);
        let motion = Self::build(sizes, &mut ld);
        ld.finish()?;
        Ok(motion)
    }

    /// The motion features of a flow latent `[B, C, T, h, w]`, as a fuser for STDiT3: flow-only
    /// work a run does once (see [`FlowFeatures`]).
    pub fn features(&self, flow_latent: Tensor<5>) -> MotionFeatures<'_> {
        MotionFeatures { fuser: &self.fuser, features: FlowFeatures::compute(&self.traj_extractor, flow_latent) }
    }
}

/// TE features of one flow latent, bound to the MGFs: the [`MotionFuser`] STDiT3 calls. Their flow
/// batch may divide the model's batch (one flow for both CFG halves): γ, β are broadcast.
pub struct MotionFeatures<'a> {
    fuser: &'a [Mgf],
    pub features: FlowFeatures,
}

impl MotionFuser for MotionFeatures<'_> {
    fn fuse(&self, layer: usize, h: Tensor<4>) -> Tensor<4> {
        match self.fuser.get(layer) {
            Some(mgf) => self.features.fuse(mgf, layer, h, 1.0),
            None => h,
        }
    }
}

/// STDiT3 with Tora's TE/MGF in its temporal blocks.
#[derive(Debug)]
pub struct ToraStdit3 {
    pub base: Stdit3,
    pub motion: ToraMotion,
}

impl ToraStdit3 {
    /// OpenSora 1.2 weights from `dir` (the `stdit3` folder or its parent) and TE/MGF weights
    /// from `motion_weights` (one safetensors file) when given, else zero-initialised TE/MGF.
    pub fn load(
        dir: &Path,
        motion_weights: Option<&Path>,
        device: &ComputeDevice,
    ) -> Result<(Self, Stdit3Config), LoadError> {
        let (base, config) = Stdit3::load(dir, device)?;
        let motion = match motion_weights {
            Some(path) => ToraMotion::from_checkpoint(&config, &Checkpoint::open_file(path)?, device)?,
            None => ToraMotion::zeros(ToraMotionSizes::for_stdit3(&config), device)
                .map_err(|reason| LoadError::Config { path: dir.join("config.json"), reason })?,
        };
        Ok((ToraStdit3 { base, motion }, config))
    }

    /// [`Stdit3::try_forward`] with the flow latent `[B' | B, C, T, h, w]` (B' dividing B, e.g. one
    /// flow for both CFG halves) guiding every temporal block; `None` = the plain STDiT3.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: Tensor<5>,
        timestep: Tensor<1>,
        y: Tensor<4>,
        mask: Option<Tensor<2, Int>>,
        x_mask: Option<Tensor<2, Bool>>,
        fps: Tensor<1>,
        height: f32,
        width: f32,
        flow_latent: Option<Tensor<5>>,
    ) -> Result<Tensor<5>, InputError> {
        let features = flow_latent.map(|flow| self.motion_features(flow)).transpose()?;
        self.forward_guided(x, timestep, y, mask, x_mask, fps, height, width, features.as_ref())
    }

    /// The TE features of a flow latent `[B', C, T, h, w]`, computed once per run and passed to
    /// every [`Self::forward_guided`].
    pub fn motion_features(&self, flow: Tensor<5>) -> Result<MotionFeatures<'_>, InputError> {
        let [bf, cf, ..] = flow.dims();
        let expected = self.motion.traj_extractor.conv_in.weight.dims()[1];
        let [pt, ph, pw] = self.motion.traj_extractor.sizes.patch;
        if bf == 0 || cf * pt * ph * pw != expected {
            return Err(InputError(format!(
                "flow latent is {:?}; expected [B', {}, T, h, w]",
                flow.dims(),
                expected / (pt * ph * pw)
            )));
        }
        Ok(self.motion.features(flow))
    }

    /// [`Self::forward`] with precomputed [`MotionFeatures`] (`None` = the plain STDiT3).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_guided(
        &self,
        x: Tensor<5>,
        timestep: Tensor<1>,
        y: Tensor<4>,
        mask: Option<Tensor<2, Int>>,
        x_mask: Option<Tensor<2, Bool>>,
        fps: Tensor<1>,
        height: f32,
        width: f32,
        motion: Option<&MotionFeatures<'_>>,
    ) -> Result<Tensor<5>, InputError> {
        let Some(motion) = motion else {
            return self.base.try_forward(x, timestep, y, mask, x_mask, fps, height, width, None);
        };
        let [b, _, t, h, w] = x.dims();
        let [bf, tf, hf, wf] = motion.features.flow_dims();
        if bf == 0 || b % bf != 0 || (t, h, w) != (tf, hf, wf) {
            return Err(InputError(format!(
                "flow latent is [{bf}, _, {tf}, {hf}, {wf}]; expected [B' dividing {b}, _, {t}, {h}, {w}]"
            )));
        }
        self.base.try_forward(x, timestep, y, mask, x_mask, fps, height, width, Some(motion))
    }
}
