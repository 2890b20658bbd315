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
//! as Tora initialises them), so the model is exactly OpenSora 1.2. The shared
//! `crate::model::tora` TE/MGF can be plugged in through the same trait.

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::module::{conv1d, conv2d};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Bool, Int, Tensor};

use super::stdit3::{InputError, Stdit3};
use super::Stdit3Config;
use crate::model::device::ComputeDevice;
use crate::model::load::{Checkpoint, LoadError, TensorLoader};

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

/// BatchNorm eps (PyTorch default) and GroupNorm eps of the fuser.
const NORM_EPS: f64 = 1e-5;
/// `FloatGroupNorm(32, C)`.
pub const FUSER_GROUPS: usize = 32;

/// A 2D / 1D convolution's parameters.
#[derive(Module, Debug)]
pub struct Conv<const D: usize> {
    pub weight: Param<Tensor<D>>,
    pub bias: Param<Tensor<1>>,
}

impl Conv<4> {
    /// 3×3 (or k×k) convolution, stride 1, "same" zero padding. `x` `[N, C, H, W]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[2];
        conv2d(x, self.weight.val(), Some(self.bias.val()), ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1))
    }
}

impl Conv<3> {
    /// Conv1d with replicate padding (`padding_mode="replicate"`). `x` `[N, C, L]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let k = self.weight.dims()[2];
        let x = x.pad([(k / 2, k / 2)], PadMode::Edge);
        conv1d(x, self.weight.val(), Some(self.bias.val()), ConvOptions::new([1], [0], [1], 1))
    }
}

/// `BatchNorm2d` in eval mode (running statistics).
#[derive(Module, Debug)]
pub struct BatchNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub running_mean: Param<Tensor<1>>,
    pub running_var: Param<Tensor<1>>,
}

impl BatchNorm {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.weight.dims()[0];
        let per_channel = |p: &Param<Tensor<1>>| p.val().reshape([1, c, 1, 1]);
        let inv_std = per_channel(&self.running_var).add_scalar(NORM_EPS).sqrt().recip();
        (x - per_channel(&self.running_mean)) * inv_std * per_channel(&self.weight) + per_channel(&self.bias)
    }
}

/// The TE's `ResnetBlock` as Tora configures it (`sk=True`, same width, no downsampling):
/// `x + block2(relu(bn2(block1(relu(bn1(x))))))`.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    pub bn1: BatchNorm,
    pub block1: Conv<4>,
    pub bn2: BatchNorm,
    pub block2: Conv<4>,
}

impl ResnetBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        use burn::tensor::activation::relu;
        let h = self.block1.forward(relu(self.bn1.forward(x.clone())));
        let h = self.block2.forward(relu(self.bn2.forward(h)));
        h + x
    }
}

/// Trajectory Extractor on the flow latent: patchify `(pt, ph, pw)` like STDiT3's patch
/// embedding, `conv_in`, then `blocks_per_layer` resnet blocks per temporal block, each group's
/// output one motion feature `[(B T'), F, H', W']`.
#[derive(Module, Debug)]
pub struct TrajExtractor {
    pub conv_in: Conv<4>,
    pub body: Vec<ResnetBlock>,
    #[module(skip)]
    pub patch_size: [usize; 3],
    #[module(skip)]
    pub blocks_per_layer: usize,
}

impl TrajExtractor {
    /// `flow` `[B, C, T, h, w]` (the VAE latent of the flow video) → one feature per layer.
    pub fn forward(&self, flow: Tensor<5>) -> Vec<Tensor<4>> {
        let [pt, ph, pw] = self.patch_size;
        let [b, c, t, h, w] = flow.dims();
        let pad = |n: usize, p: usize| (p - n % p) % p;
        let flow = flow.pad([(0, pad(t, pt)), (0, pad(h, ph)), (0, pad(w, pw))], PadMode::Constant(0.0));
        let (nt, nh, nw) = (t.div_ceil(pt), h.div_ceil(ph), w.div_ceil(pw));
        // "B C (Nt Tp) (Nh Hp) (Nw Wp) -> (B Nt) (C Tp Hp Wp) Nh Nw"
        let mut x = flow.reshape([b, c, nt, pt, nh, ph, nw, pw]).permute([0, 2, 1, 3, 5, 7, 4, 6]).reshape([
            b * nt,
            c * pt * ph * pw,
            nh,
            nw,
        ]);
        x = self.conv_in.forward(x);
        let mut features = Vec::with_capacity(self.body.len() / self.blocks_per_layer.max(1));
        for (j, block) in self.body.iter().enumerate() {
            x = block.forward(x);
            if (j + 1) % self.blocks_per_layer == 0 {
                features.push(x.clone());
            }
        }
        features
    }
}

/// `FloatGroupNorm(groups, C)` with affine parameters.
#[derive(Module, Debug)]
pub struct GroupNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub groups: usize,
}

impl GroupNorm {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let g = self.groups;
        let grouped = x.reshape([n, g, (c / g) * h * w]);
        let (var, mean) = grouped.clone().var_mean_bias(2);
        let normed = ((grouped - mean) / var.add_scalar(NORM_EPS).sqrt()).reshape([n, c, h, w]);
        normed * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// Motion-guidance Fuser (`MGF`): `h + GroupNorm(h)·γ + β`, with γ, β from the motion feature
/// by a spatial 3×3 conv (to C/4) and a temporal conv over the frames (to C, replicate pad).
#[derive(Module, Debug)]
pub struct Mgf {
    pub flow_gamma_spatial: Conv<4>,
    pub flow_gamma_temporal: Conv<3>,
    pub flow_beta_spatial: Conv<4>,
    pub flow_beta_temporal: Conv<3>,
    pub flow_cond_norm: GroupNorm,
}

impl Mgf {
    /// `h` `[(B T), C, H, W]`, `flow` `[(B T), F, H, W]`.
    pub fn forward(&self, h: Tensor<4>, flow: Tensor<4>, frames: usize) -> Tensor<4> {
        let temporal = |spatial: &Conv<4>, temporal: &Conv<3>| {
            let f = spatial.forward(flow.clone()); // [(B T), C/4, H, W]
            let [bt, c4, hh, ww] = f.dims();
            let b = bt / frames;
            // "(b f) c h w -> (b h w) c f"
            let seq = f.reshape([b, frames, c4, hh * ww]).permute([0, 3, 2, 1]).reshape([b * hh * ww, c4, frames]);
            let out = temporal.forward(seq); // [(B H W), C, T]
            let c = out.dims()[1];
            out.reshape([b, hh * ww, c, frames]).permute([0, 3, 2, 1]).reshape([bt, c, hh, ww])
        };
        let gamma = temporal(&self.flow_gamma_spatial, &self.flow_gamma_temporal);
        let beta = temporal(&self.flow_beta_spatial, &self.flow_beta_temporal);
        h.clone() + self.flow_cond_norm.forward(h) * gamma + beta
    }
}

/// TE + one MGF per temporal block.
#[derive(Module, Debug)]
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
        let dev = device.device();
        let zeros1 = |n: usize| Param::from_tensor(Tensor::<1>::zeros([n], dev));
        let ones1 = |n: usize| Param::from_tensor(Tensor::<1>::ones([n], dev));
        let conv2 =
            |o: usize, i: usize| Conv { weight: Param::from_tensor(Tensor::zeros([o, i, 3, 3], dev)), bias: zeros1(o) };
        let conv1 =
            |o: usize, i: usize| Conv { weight: Param::from_tensor(Tensor::zeros([o, i, 3], dev)), bias: zeros1(o) };
        let bn =
            |c: usize| BatchNorm { weight: ones1(c), bias: zeros1(c), running_mean: zeros1(c), running_var: ones1(c) };
        let [pt, ph, pw] = sizes.patch_size;
        let (f, c) = (sizes.feature_channels, sizes.hidden_size);
        let body = (0..sizes.layers * sizes.blocks_per_layer)
            .map(|_| ResnetBlock { bn1: bn(f), block1: conv2(f, f), bn2: bn(f), block2: conv2(f, f) })
            .collect();
        let fuser = (0..sizes.layers)
            .map(|_| Mgf {
                flow_gamma_spatial: conv2(c / 4, f),
                flow_gamma_temporal: conv1(c, c / 4),
                flow_beta_spatial: conv2(c / 4, f),
                flow_beta_temporal: conv1(c, c / 4),
                flow_cond_norm: GroupNorm { weight: ones1(c), bias: zeros1(c), groups: FUSER_GROUPS },
            })
            .collect();
        Ok(ToraMotion {
            traj_extractor: TrajExtractor {
                conv_in: conv2(f, sizes.latent_channels * pt * ph * pw),
                body,
                patch_size: sizes.patch_size,
                blocks_per_layer: sizes.blocks_per_layer,
            },
            fuser,
        })
    }

    /// Loads TE/MGF weights (keys `traj_extractor.*`, `fuser.*`) for a given STDiT3; the feature
    /// width and blocks per layer are read from the file.
    pub fn from_checkpoint(
        config: &Stdit3Config,
        ckpt: &Checkpoint,
        device: &ComputeDevice,
    ) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::Config { path: ckpt.source().into(), reason };
        let [pt, ph, pw] = config.patch_size;
        let cin = config.in_channels * pt * ph * pw;
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
            latent_channels: config.in_channels,
            patch_size: config.patch_size,
            feature_channels: f,
            blocks_per_layer: blocks / layers,
            layers,
            hidden_size: config.hidden_size,
        };
        sizes.validate().map_err(bad)?;
        let c = config.hidden_size;
        let mut ld = TensorLoader::new(ckpt, device);
        let conv2 = |ld: &mut TensorLoader, key: String, o: usize, i: usize| Conv {
            weight: Param::from_tensor(ld.tensor(&format!("{key}.weight"), [o, i, 3, 3])),
            bias: Param::from_tensor(ld.tensor(&format!("{key}.bias"), [o])),
        };
        let conv1 = |ld: &mut TensorLoader, key: String, o: usize, i: usize| Conv {
            weight: Param::from_tensor(ld.tensor(&format!("{key}.weight"), [o, i, 3])),
            bias: Param::from_tensor(ld.tensor(&format!("{key}.bias"), [o])),
        };
        let vec1 = |ld: &mut TensorLoader, key: String, n: usize| Param::from_tensor(ld.tensor(&key, [n]));
        let bn = |ld: &mut TensorLoader, key: String| {
            ld.ignore_prefix(&format!("{key}.num_batches_tracked"));
            BatchNorm {
                weight: vec1(ld, format!("{key}.weight"), f),
                bias: vec1(ld, format!("{key}.bias"), f),
                running_mean: vec1(ld, format!("{key}.running_mean"), f),
                running_var: vec1(ld, format!("{key}.running_var"), f),
            }
        };
        let conv_in = conv2(&mut ld, "traj_extractor.conv_in".into(), f, cin);
        let body = (0..blocks)
            .map(|j| {
                let p = format!("traj_extractor.body.{j}");
                ResnetBlock {
                    bn1: bn(&mut ld, format!("{p}.bn1")),
                    block1: conv2(&mut ld, format!("{p}.block1"), f, f),
                    bn2: bn(&mut ld, format!("{p}.bn2")),
                    block2: conv2(&mut ld, format!("{p}.block2"), f, f),
                }
            })
            .collect();
        let fuser = (0..layers)
            .map(|i| {
                let p = format!("fuser.{i}");
                Mgf {
                    flow_gamma_spatial: conv2(&mut ld, format!("{p}.flow_gamma_spatial"), c / 4, f),
                    flow_gamma_temporal: conv1(&mut ld, format!("{p}.flow_gamma_temporal"), c, c / 4),
                    flow_beta_spatial: conv2(&mut ld, format!("{p}.flow_beta_spatial"), c / 4, f),
                    flow_beta_temporal: conv1(&mut ld, format!("{p}.flow_beta_temporal"), c, c / 4),
                    flow_cond_norm: GroupNorm {
                        weight: vec1(&mut ld, format!("{p}.flow_cond_norm.weight"), c),
                        bias: vec1(&mut ld, format!("{p}.flow_cond_norm.bias"), c),
                        groups: FUSER_GROUPS,
                    },
                }
            })
            .collect();
        ld.finish()?;
        Ok(ToraMotion {
            traj_extractor: TrajExtractor {
                conv_in,
                body,
                patch_size: config.patch_size,
                blocks_per_layer: blocks / layers,
            },
            fuser,
        })
    }

    /// The motion features of a flow latent `[B, C, T, h, w]`, as a fuser for STDiT3.
    pub fn features(&self, flow_latent: Tensor<5>) -> MotionFeatures<'_> {
        let frames = flow_latent.dims()[2].div_ceil(self.traj_extractor.patch_size[0]);
        MotionFeatures { fuser: &self.fuser, features: self.traj_extractor.forward(flow_latent), frames }
    }
}

/// TE features of one flow latent, bound to the MGFs: the [`MotionFuser`] STDiT3 calls.
pub struct MotionFeatures<'a> {
    fuser: &'a [Mgf],
    /// One per temporal block, `[(B T), F, H', W']`.
    pub features: Vec<Tensor<4>>,
    frames: usize,
}

impl MotionFuser for MotionFeatures<'_> {
    fn fuse(&self, layer: usize, h: Tensor<4>) -> Tensor<4> {
        match (self.fuser.get(layer), self.features.get(layer)) {
            (Some(mgf), Some(feature)) => mgf.forward(h, feature.clone(), self.frames),
            _ => h,
        }
    }
}

/// STDiT3 with Tora's TE/MGF in its temporal blocks.
#[derive(Module, Debug)]
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

    /// [`Stdit3::try_forward`] with the flow latent `[B' | B, C, T, h, w]` (tiled over the batch,
    /// e.g. the CFG halves) guiding every temporal block; `None` = the plain STDiT3.
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
        let Some(flow) = flow_latent else {
            return self.base.try_forward(x, timestep, y, mask, x_mask, fps, height, width, None);
        };
        let [b, _, t, h, w] = x.dims();
        let [bf, cf, tf, hf, wf] = flow.dims();
        let expected = self.motion.traj_extractor.conv_in.weight.dims()[1];
        let [pt, ph, pw] = self.motion.traj_extractor.patch_size;
        if bf == 0 || b % bf != 0 || (t, h, w) != (tf, hf, wf) || cf * pt * ph * pw != expected {
            return Err(InputError(format!(
                "flow latent is {:?}; expected [B' dividing {b}, {}, {t}, {h}, {w}]",
                flow.dims(),
                expected / (pt * ph * pw)
            )));
        }
        let flow = if bf == b { flow } else { flow.repeat_dim(0, b / bf) };
        let features = self.motion.features(flow);
        self.base.try_forward(x, timestep, y, mask, x_mask, fps, height, width, Some(&features))
    }
}
