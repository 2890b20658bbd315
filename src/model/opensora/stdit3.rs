//! STDiT3 (OpenSora 1.2's Spatial-Temporal DiT), as `opensora/models/stdit/stdit3.py` (v1.2.0).
//!
//! Field names mirror the checkpoint keys of hpcai-tech/OpenSora-STDiT-v3 (`mlp.0` → `mlp_0`):
//!
//! ```text
//! x_embedder.proj.{weight,bias}                  patch Conv3d [C, in, pt, ph, pw]
//! t_embedder.mlp.{0,2}, fps_embedder.mlp.{0,2}   timestep / fps sinusoid MLPs
//! t_block.1                                      SiLU → Linear(C, 6C)
//! y_embedder.y_proj.fc{1,2}, y_embedder.y_embedding   caption Mlp, null caption [L, C_cap]
//! rope.freqs                                     temporal RoPE [head_dim/2]
//! {spatial,temporal}_blocks.i.{attn.{qkv,q_norm,k_norm,proj},cross_attn.{q_linear,kv_linear,proj},
//!                              mlp.fc{1,2},scale_shift_table}
//! final_layer.{linear,scale_shift_table}
//! ```
//!
//! Forward: `t = t_emb(timestep) + fps_emb(fps)`; tokens = patch embed + 2D sin-cos position
//! embedding; spatial and temporal blocks alternate (each: t2i-modulated self-attention, caption
//! cross-attention, modulated MLP); final modulated projection; unpatchify `(t h w)(p q c)`.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use super::blocks::{
    Attention, BlockContext, Captions, Mlp, MultiHeadCrossAttention, RmsNorm, Stdit3Block, T2IFinalLayer,
};
use super::config::Stdit3Config;
use super::embeddings::{
    position_embedding_2d, position_scale, CaptionEmbedder, Conv3dPatch, PatchEmbed3D, RotaryEmbedding,
    TimestepEmbedder,
};
use super::tora::MotionFuser;
use crate::model::device::ComputeDevice;
use crate::model::load::{read_config, Checkpoint, ComponentDir, LoadError, TensorLoader};

/// `t_block`: `nn.Sequential(SiLU, Linear(C, 6C))`; key `t_block.1`.
#[derive(Module, Debug)]
pub struct TBlock {
    /// `t_block.1`
    pub linear_1: Linear,
}

impl TBlock {
    pub fn forward(&self, t: Tensor<2>) -> Tensor<2> {
        self.linear_1.forward(silu(t))
    }
}

/// STDiT3 with its weights.
#[derive(Module, Debug)]
pub struct Stdit3 {
    pub x_embedder: PatchEmbed3D,
    pub t_embedder: TimestepEmbedder,
    pub fps_embedder: TimestepEmbedder,
    pub t_block: TBlock,
    pub y_embedder: CaptionEmbedder,
    pub rope: RotaryEmbedding,
    pub spatial_blocks: Vec<Stdit3Block>,
    pub temporal_blocks: Vec<Stdit3Block>,
    pub final_layer: T2IFinalLayer,
    #[module(skip)]
    pub patch_size: [usize; 3],
    #[module(skip)]
    pub hidden_size: usize,
    #[module(skip)]
    pub out_channels: usize,
    #[module(skip)]
    pub input_sq_size: usize,
}

/// Why a forward call's inputs do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("STDiT3 input: {0}")]
pub struct InputError(pub String);

impl Stdit3 {
    /// Loads config and weights from the `stdit3` folder or the folder holding it.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<(Self, Stdit3Config), LoadError> {
        let component = ComponentDir::find(dir, "stdit3", &["STDiT3"])?;
        let config_path = component.config_path();
        let config: Stdit3Config = read_config(&config_path)?;
        config.validate().map_err(|reason| LoadError::Config { path: config_path.clone(), reason })?;
        let ckpt = Checkpoint::open_dir(&component.dir)?;
        let model = Self::from_checkpoint(&config, &ckpt, device)?;
        Ok((model, config))
    }

    /// Builds the model from an opened checkpoint; every missing / mismatched / unexpected key is
    /// reported in one [`LoadError::Keys`].
    pub fn from_checkpoint(
        config: &Stdit3Config,
        ckpt: &Checkpoint,
        device: &ComputeDevice,
    ) -> Result<Self, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: ckpt.source().into(), reason })?;
        let mut ld = TensorLoader::new(ckpt, device);
        let c = config.hidden_size;
        let (heads, head_dim) = (config.num_heads, config.head_dim());
        let [pt, ph, pw] = config.patch_size;
        let out = config.out_channels();

        let linear = |ld: &mut TensorLoader, key: &str, d_out: usize, d_in: usize| Linear {
            weight: Param::from_tensor(ld.linear_weight(&format!("{key}.weight"), d_out, d_in)),
            bias: Some(Param::from_tensor(ld.tensor(&format!("{key}.bias"), [d_out]))),
        };
        let mlp = |ld: &mut TensorLoader, key: &str, d_in: usize, hidden: usize, d_out: usize| Mlp {
            fc1: linear(ld, &format!("{key}.fc1"), hidden, d_in),
            fc2: linear(ld, &format!("{key}.fc2"), d_out, hidden),
        };
        let embedder = |ld: &mut TensorLoader, key: &str| TimestepEmbedder {
            mlp_0: linear(ld, &format!("{key}.mlp.0"), c, super::embeddings::FREQUENCY_EMBEDDING_SIZE),
            mlp_2: linear(ld, &format!("{key}.mlp.2"), c, c),
        };
        let rms = |ld: &mut TensorLoader, key: String| {
            config.qk_norm.then(|| RmsNorm { weight: Param::from_tensor(ld.tensor(&key, [head_dim])) })
        };

        let x_embedder = PatchEmbed3D {
            proj: Conv3dPatch {
                weight: Param::from_tensor(ld.tensor("x_embedder.proj.weight", [c, config.in_channels, pt, ph, pw])),
                bias: Param::from_tensor(ld.tensor("x_embedder.proj.bias", [c])),
            },
        };
        let t_embedder = embedder(&mut ld, "t_embedder");
        let fps_embedder = embedder(&mut ld, "fps_embedder");
        let t_block = TBlock { linear_1: linear(&mut ld, "t_block.1", 6 * c, c) };
        let y_embedder = CaptionEmbedder {
            y_proj: mlp(&mut ld, "y_embedder.y_proj", config.caption_channels, c, c),
            y_embedding: Param::from_tensor(
                ld.tensor("y_embedder.y_embedding", [config.model_max_length, config.caption_channels]),
            ),
        };
        let rope = RotaryEmbedding { freqs: Param::from_tensor(ld.tensor("rope.freqs", [head_dim / 2])) };

        let block = |ld: &mut TensorLoader, kind: &str, i: usize| {
            let p = format!("{kind}_blocks.{i}");
            Stdit3Block {
                attn: Attention {
                    qkv: linear(ld, &format!("{p}.attn.qkv"), 3 * c, c),
                    q_norm: rms(ld, format!("{p}.attn.q_norm.weight")),
                    k_norm: rms(ld, format!("{p}.attn.k_norm.weight")),
                    proj: linear(ld, &format!("{p}.attn.proj"), c, c),
                    num_heads: heads,
                },
                cross_attn: MultiHeadCrossAttention {
                    q_linear: linear(ld, &format!("{p}.cross_attn.q_linear"), c, c),
                    kv_linear: linear(ld, &format!("{p}.cross_attn.kv_linear"), 2 * c, c),
                    proj: linear(ld, &format!("{p}.cross_attn.proj"), c, c),
                    num_heads: heads,
                },
                mlp: mlp(ld, &format!("{p}.mlp"), c, config.mlp_hidden(), c),
                scale_shift_table: Param::from_tensor(ld.tensor(&format!("{p}.scale_shift_table"), [6, c])),
                temporal: kind == "temporal",
                index: i,
            }
        };
        let spatial_blocks: Vec<Stdit3Block> = (0..config.depth).map(|i| block(&mut ld, "spatial", i)).collect();
        let temporal_blocks: Vec<Stdit3Block> = (0..config.depth).map(|i| block(&mut ld, "temporal", i)).collect();
        let final_layer = T2IFinalLayer {
            linear: linear(&mut ld, "final_layer.linear", pt * ph * pw * out, c),
            scale_shift_table: Param::from_tensor(ld.tensor("final_layer.scale_shift_table", [2, c])),
        };
        ld.finish()?;
        Ok(Stdit3 {
            x_embedder,
            t_embedder,
            fps_embedder,
            t_block,
            y_embedder,
            rope,
            spatial_blocks,
            temporal_blocks,
            final_layer,
            patch_size: config.patch_size,
            hidden_size: c,
            out_channels: out,
            input_sq_size: config.input_sq_size,
        })
    }

    /// The null caption for classifier-free guidance (`T5Encoder.null(n)`), `[n, 1, L, C_cap]`.
    pub fn null_caption(&self, n: usize) -> Tensor<4> {
        self.y_embedder.null(n)
    }

    /// The model's prediction `[B, out, T, h, w]` (first `in_channels` = velocity).
    ///
    /// - `x` `[B, C, T, h, w]` latent; `timestep` `[B]` in `[0, 1000]`;
    /// - `y` `[B, 1, L, C_cap]` T5 captions; `mask` `[B' | B, L]` (1 = valid token; a batch of B'
    ///   dividing B is tiled, as the reference repeats it for the CFG batch). Without `mask`,
    ///   each sample attends to all L tokens of its own caption;
    /// - `x_mask` `[B, T]`: frames flagged false are conditioning frames, modulated with t = 0;
    /// - `fps` `[B' | B]`; `height`, `width`: the pixel size (positional-embedding scale).
    ///
    /// Panics when the shapes do not fit together; [`Stdit3::try_forward`] reports that instead.
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
    ) -> Tensor<5> {
        match self.try_forward(x, timestep, y, mask, x_mask, fps, height, width, None) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Stdit3::forward`] with shape errors as values and optional Tora motion guidance, applied
    /// in every temporal block to the modulated tokens before the temporal attention.
    #[allow(clippy::too_many_arguments)]
    pub fn try_forward(
        &self,
        x: Tensor<5>,
        timestep: Tensor<1>,
        y: Tensor<4>,
        mask: Option<Tensor<2, Int>>,
        x_mask: Option<Tensor<2, Bool>>,
        fps: Tensor<1>,
        height: f32,
        width: f32,
        motion: Option<&dyn MotionFuser>,
    ) -> Result<Tensor<5>, InputError> {
        let err = |s: String| Err(InputError(s));
        let [b, c_in, tx, hx, wx] = x.dims();
        let expected_in = self.x_embedder.proj.weight.dims()[1];
        if c_in != expected_in {
            return err(format!("x has {c_in} channels, the model takes {expected_in}"));
        }
        if b == 0 || tx == 0 || hx == 0 || wx == 0 {
            return err(format!("x has an empty dimension: {:?}", x.dims()));
        }
        if timestep.dims()[0] != b {
            return err(format!("timestep has {} entries for a batch of {b}", timestep.dims()[0]));
        }
        let [by, _, l, c_cap] = y.dims();
        let [_, expected_cap] = self.y_embedder.y_embedding.dims();
        if by != b || c_cap != expected_cap {
            return err(format!("y is {:?}, expected [{b}, 1, L, {expected_cap}]", y.dims()));
        }
        let fps_len = fps.dims()[0];
        if fps_len == 0 || b % fps_len != 0 {
            return err(format!("fps has {fps_len} entries for a batch of {b}"));
        }
        if let Some(m) = &mask {
            let [bm, lm] = m.dims();
            if bm == 0 || b % bm != 0 || lm != l {
                return err(format!("mask is {:?} for captions [{b}, 1, {l}, ..]", m.dims()));
            }
        }
        if let Some(m) = &x_mask {
            if m.dims() != [b, tx] {
                return err(format!("x_mask is {:?}, expected [{b}, {tx}]", m.dims()));
            }
        }
        if !(height.is_finite() && width.is_finite() && height > 0.0 && width > 0.0) {
            return err(format!("height {height} / width {width} must be positive"));
        }

        // === patch grid and position embedding ===
        let [pt, ph, pw] = self.patch_size;
        let (t, hp, wp) = (tx.div_ceil(pt), hx.div_ceil(ph), wx.div_ceil(pw));
        let s = hp * wp;
        let c = self.hidden_size;
        let (scale, base_size) = position_scale(height, width, self.input_sq_size, s);
        let weight = self.x_embedder.proj.weight.val();
        let (device, dtype) = (weight.device(), weight.dtype());
        let pos_emb = Tensor::<3>::from_data(
            TensorData::new(position_embedding_2d(c, hp, wp, scale, base_size), [1, s, c]),
            (&device, dtype),
        ); // [1, S, C]

        // === timestep (+ fps) embedding ===
        let host = |v: Tensor<1>| -> Vec<f32> { v.cast(DType::F32).into_data().try_to_vec().unwrap_or_default() };
        let timesteps = host(timestep);
        let fps_values: Vec<f32> = host(fps).repeat(b / fps_len);
        let fps_emb = self.fps_embedder.forward(&fps_values); // [B, C]
        let t_emb = self.t_embedder.forward(&timesteps) + fps_emb.clone(); // [B, C]
        let t_mlp = self.t_block.forward(t_emb.clone()); // [B, 6C]
        let t0 = x_mask.as_ref().map(|_| self.t_embedder.forward(&vec![0.0; b]) + fps_emb);
        let t0_mlp = t0.clone().map(|t0| self.t_block.forward(t0));

        // === captions ===
        let y_emb = self.y_embedder.forward(y); // [B, L, C]
        let captions = match mask {
            Some(mask) => {
                let bm = mask.dims()[0];
                let mask = if bm == b { mask } else { mask.repeat_dim(0, b / bm) };
                let padding = mask.equal_elem(0); // [B, L]
                let bias = Tensor::<2>::zeros([b, l], (&device, DType::F32)).mask_fill(padding, f32::MIN);
                Captions { tokens: y_emb, bias: Some(bias.reshape([b, 1, 1, l])) }
            }
            // No mask: the reference still passes `y_lens = [L]·B`, so each sample sees all of
            // its own L tokens (block-diagonal over samples, nothing masked).
            None => Captions { tokens: y_emb, bias: None },
        };

        // === tokens ===
        let tokens = self.x_embedder.forward(x); // [B, (T S), C]
        let mut h = (tokens.reshape([b, t, s, c]) + pos_emb.unsqueeze::<4>()).reshape([b, t * s, c]);

        // === blocks ===
        let rope = self.rope.tables(t);
        let ctx = BlockContext {
            t_mlp,
            t0_mlp,
            x_mask: x_mask.clone(),
            captions: &captions,
            grid: (t, hp, wp),
            rope: &rope,
            motion,
        };
        for (spatial, temporal) in self.spatial_blocks.iter().zip(&self.temporal_blocks) {
            h = spatial.forward(h, &ctx);
            h = temporal.forward(h, &ctx);
        }

        // === final layer, unpatchify ===
        let final_mask = x_mask.as_ref().zip(t0);
        let h = self.final_layer.forward(h, t_emb, final_mask, t); // [B, (T S), pt ph pw out]
        Ok(self.unpatchify(h, (t, hp, wp), (tx, hx, wx)))
    }

    /// `B (Nt Nh Nw) (pt ph pw C) -> B C (Nt pt) (Nh ph) (Nw pw)`, cropped back to the input size.
    fn unpatchify(&self, x: Tensor<3>, grid: (usize, usize, usize), size: (usize, usize, usize)) -> Tensor<5> {
        let [b, _, _] = x.dims();
        let (nt, nh, nw) = grid;
        let [pt, ph, pw] = self.patch_size;
        let co = self.out_channels;
        let x = x
            .reshape([b, nt, nh, nw, pt, ph, pw, co])
            .permute([0, 7, 1, 4, 2, 5, 3, 6]) // [B, C, Nt, pt, Nh, ph, Nw, pw]
            .reshape([b, co, nt * pt, nh * ph, nw * pw]);
        let (tx, hx, wx) = size;
        if (tx, hx, wx) == (nt * pt, nh * ph, nw * pw) {
            x
        } else {
            x.slice([0..b, 0..co, 0..tx, 0..hx, 0..wx])
        }
    }
}
