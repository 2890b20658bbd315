//! `ToraTransformer3DModel` (diffusers-version Tora) = diffusers' `CogVideoXTransformer3DModel`
//! plus Tora's Trajectory Extractor and one Motion-guidance Fuser per block.
//!
//! ```text
//! emb  = TimestepEmbedding(Timesteps(t))                      [B, time_embed_dim]
//! x    = PatchEmbed(text, video) (+ learned / sin-cos PE)      [B, L + N, D]; split text | video
//! per block i:
//!   (v, c), gate, c_gate = LayerNormZero1(video, text, emb)    shift/scale/gate per stream
//!   v = MGF_i(v, TE(video_flow)_i)                             only with a flow
//!   a = Attention([c; v])  (LayerNorm on q, k per head; RoPE on video tokens)
//!   video += gate·a_video;  text += c_gate·a_text
//!   (v, c), gate, c_gate = LayerNormZero2(video, text, emb)
//!   f = FFN([c; v]) (gelu-tanh);  video += gate·f_video;  text += c_gate·f_text
//! video = LayerNorm_final([text; video])_video   (rotary models; else on video alone)
//! out   = proj_out(AdaLayerNorm(video, emb))  -> unpatchify   [B, F, C_out, h, w]
//! ```
//!
//! Field names mirror the checkpoint keys (`transformer_blocks.{i}.attn1.to_q`, `fuser.{i}`, ...).

use std::path::Path;

use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::Tensor;

use super::embeddings::{PatchEmbed, TimestepEmbedding, TimestepProj};
use super::layers::{linear, LayerNorm, WeightSource};
use super::rope::{apply_rotary, RotaryEmbedding};
use super::TransformerConfig;
use crate::model::attention::scaled_dot_product_attention;
use crate::model::device::ComputeDevice;
use crate::model::load::{read_config, Checkpoint, ComponentDir, LoadError, TensorLoader};
use crate::model::tora::trajectory_extractor::{TeSizes, TE_CHANNELS};
use crate::model::tora::{FlowFeatures, Mgf, TrajExtractor};

/// `ofs` value the CogVideoX 1.5 I2V pipeline passes (only used by configs with an ofs embedding).
pub const DEFAULT_OFS: f32 = 2.0;

/// `CogVideoXLayerNormZero`: `linear(silu(emb))` -> shift, scale, gate for video then text.
#[derive(Debug, Clone)]
pub struct LayerNormZero {
    pub linear: Linear,
    pub norm: LayerNorm,
}

/// A LayerNormZero's output: the two normalised streams and their gates `[B, 1, D]`.
struct Modulated {
    video: Tensor<3>,
    text: Tensor<3>,
    gate: Tensor<3>,
    text_gate: Tensor<3>,
}

impl LayerNormZero {
    fn load(src: &mut impl WeightSource, key: &str, cond: usize, dim: usize, eps: f64, affine: bool) -> Self {
        LayerNormZero {
            linear: linear(src, &format!("{key}.linear"), 6 * dim, cond, true),
            norm: LayerNorm::load(src, &format!("{key}.norm"), dim, eps, affine),
        }
    }

    fn forward(&self, video: Tensor<3>, text: Tensor<3>, emb: Tensor<2>) -> Modulated {
        // [B, 6D] -> six [B, 1, D]
        let m: Vec<Tensor<3>> = self.linear.forward(silu(emb)).unsqueeze_dim::<3>(1).chunk(6, 2);
        let modulate = |x: Tensor<3>, shift: &Tensor<3>, scale: &Tensor<3>| {
            self.norm.forward(x) * scale.clone().add_scalar(1.0) + shift.clone()
        };
        Modulated {
            video: modulate(video, &m[0], &m[1]),
            text: modulate(text, &m[3], &m[4]),
            gate: m[2].clone(),
            text_gate: m[5].clone(),
        }
    }
}

/// diffusers `Attention` with `CogVideoXAttnProcessor2_0`.
#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub norm_q: LayerNorm,
    pub norm_k: LayerNorm,
    /// `to_out.0`
    pub to_out_0: Linear,
    pub heads: usize,
    pub head_dim: usize,
}

/// q/k LayerNorm eps (hard-coded in `CogVideoXBlock`).
const QK_NORM_EPS: f64 = 1e-6;

impl Attention {
    fn load(src: &mut impl WeightSource, key: &str, config: &TransformerConfig) -> Self {
        let (d, hd, bias) = (config.inner_dim(), config.attention_head_dim, config.attention_bias);
        Attention {
            to_q: linear(src, &format!("{key}.to_q"), d, d, bias),
            to_k: linear(src, &format!("{key}.to_k"), d, d, bias),
            to_v: linear(src, &format!("{key}.to_v"), d, d, bias),
            norm_q: LayerNorm::load(src, &format!("{key}.norm_q"), hd, QK_NORM_EPS, true),
            norm_k: LayerNorm::load(src, &format!("{key}.norm_k"), hd, QK_NORM_EPS, true),
            to_out_0: linear(src, &format!("{key}.to_out.0"), d, d, true),
            heads: config.num_attention_heads,
            head_dim: hd,
        }
    }

    /// `x` = `[text; video]` `[B, L + N, D]`; RoPE on positions ≥ `text_len`.
    fn forward(&self, x: Tensor<3>, text_len: usize, rotary: Option<&RotaryEmbedding>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let (h, hd) = (self.heads, self.head_dim);
        let heads = |t: Tensor<3>| t.reshape([b, n, h, hd]).swap_dims(1, 2); // [B, heads, tokens, head_dim]
        let q = self.norm_q.forward(heads(self.to_q.forward(x.clone())));
        let k = self.norm_k.forward(heads(self.to_k.forward(x.clone())));
        let v = heads(self.to_v.forward(x));
        let (q, k) = match rotary {
            Some(rope) => {
                let video = n - text_len;
                let rotate = |t: Tensor<4>| {
                    let text = t.clone().narrow(2, 0, text_len);
                    let vid = apply_rotary(t.narrow(2, text_len, video), rope);
                    Tensor::cat(vec![text, vid], 2)
                };
                (rotate(q), rotate(k))
            }
            None => (q, k),
        };
        let out = scaled_dot_product_attention(q, k, v, None, 1.0 / (hd as f64).sqrt());
        self.to_out_0.forward(out.swap_dims(1, 2).reshape([b, n, d]))
    }
}

/// `FeedForward(dim, activation_fn="gelu-approximate")`: `net.2(gelu_tanh(net.0.proj(x)))`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// `net.0.proj`
    pub net_0_proj: Linear,
    /// `net.2`
    pub net_2: Linear,
}

impl FeedForward {
    fn load(src: &mut impl WeightSource, key: &str, dim: usize) -> Self {
        FeedForward {
            net_0_proj: linear(src, &format!("{key}.net.0.proj"), 4 * dim, dim, true),
            net_2: linear(src, &format!("{key}.net.2"), dim, 4 * dim, true),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.net_2.forward(gelu_tanh(self.net_0_proj.forward(x)))
    }
}

/// `F.gelu(x, approximate="tanh")`.
fn gelu_tanh(x: Tensor<3>) -> Tensor<3> {
    let inner =
        (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
}

/// `CogVideoXBlock` (Tora's: MGF between norm1 and attention).
#[derive(Debug, Clone)]
pub struct Block {
    pub norm1: LayerNormZero,
    pub attn1: Attention,
    pub norm2: LayerNormZero,
    pub ff: FeedForward,
}

impl Block {
    fn load(src: &mut impl WeightSource, key: &str, config: &TransformerConfig) -> Self {
        let (d, t, eps, affine) =
            (config.inner_dim(), config.time_embed_dim, config.norm_eps, config.norm_elementwise_affine);
        Block {
            norm1: LayerNormZero::load(src, &format!("{key}.norm1"), t, d, eps, affine),
            attn1: Attention::load(src, &format!("{key}.attn1"), config),
            norm2: LayerNormZero::load(src, &format!("{key}.norm2"), t, d, eps, affine),
            ff: FeedForward::load(src, &format!("{key}.ff"), d),
        }
    }

    /// `video` `[B, N, D]`, `text` `[B, L, D]`, `emb` `[B, T]`; `motion` = (the run's TE maps, this
    /// layer's index, its fuser, the motion strength).
    fn forward(
        &self,
        video: Tensor<3>,
        text: Tensor<3>,
        emb: Tensor<2>,
        rotary: Option<&RotaryEmbedding>,
        motion: Option<(&FlowFeatures, usize, &Mgf, f32)>,
    ) -> (Tensor<3>, Tensor<3>) {
        let text_len = text.dims()[1];
        let m = self.norm1.forward(video.clone(), text.clone(), emb.clone());
        let normed_video = match motion {
            Some((features, layer, fuser, strength)) => {
                let [b, n, d] = m.video.dims();
                let ([fh, fw], frames) = (features.map_size(), features.frames());
                // B (T H W) C -> (B T) C H W, fuse, and back
                let h =
                    m.video.reshape([b, frames, fh, fw, d]).permute([0, 1, 4, 2, 3]).reshape([b * frames, d, fh, fw]);
                let h = features.fuse(fuser, layer, h, strength);
                h.reshape([b, frames, d, fh, fw]).permute([0, 1, 3, 4, 2]).reshape([b, n, d])
            }
            None => m.video,
        };
        let a = self.attn1.forward(Tensor::cat(vec![m.text, normed_video], 1), text_len, rotary);
        let n = a.dims()[1] - text_len;
        let video = video + m.gate * a.clone().narrow(1, text_len, n);
        let text = text + m.text_gate * a.narrow(1, 0, text_len);

        let m = self.norm2.forward(video.clone(), text.clone(), emb);
        let f = self.ff.forward(Tensor::cat(vec![m.text, m.video], 1));
        let video = video + m.gate * f.clone().narrow(1, text_len, n);
        let text = text + m.text_gate * f.narrow(1, 0, text_len);
        (video, text)
    }
}

/// `AdaLayerNorm(chunk_dim=1)`: `norm(x)·(1 + scale) + shift`, the linear's output split as
/// **shift, scale**.
#[derive(Debug, Clone)]
pub struct AdaLayerNormOut {
    pub linear: Linear,
    pub norm: LayerNorm,
}

impl AdaLayerNormOut {
    fn forward(&self, x: Tensor<3>, emb: Tensor<2>) -> Tensor<3> {
        let m: Vec<Tensor<3>> = self.linear.forward(silu(emb)).unsqueeze_dim::<3>(1).chunk(2, 2);
        self.norm.forward(x) * m[1].clone().add_scalar(1.0) + m[0].clone()
    }
}

/// The whole model. See the module docs for the forward.
#[derive(Debug, Clone)]
pub struct ToraTransformer3D {
    pub config: TransformerConfig,
    pub traj_extractor: TrajExtractor,
    pub fuser: Vec<Mgf>,
    pub patch_embed: PatchEmbed,
    pub time_proj: TimestepProj,
    pub time_embedding: TimestepEmbedding,
    pub ofs_proj: Option<TimestepProj>,
    pub ofs_embedding: Option<TimestepEmbedding>,
    pub transformer_blocks: Vec<Block>,
    pub norm_final: LayerNorm,
    pub norm_out: AdaLayerNormOut,
    pub proj_out: Linear,
    /// Scales every MGF's contribution (1 = Tora as trained; the studio's trajectory strength).
    pub motion_strength: f32,
    device: ComputeDevice,
}

impl ToraTransformer3D {
    /// `dir`: a pipeline folder (with `transformer/`) or the transformer folder itself.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<(Self, TransformerConfig), LoadError> {
        let component =
            ComponentDir::find(dir, "transformer", &["ToraTransformer3DModel", "CogVideoXTransformer3DModel"])?;
        let config_path = component.config_path();
        let config: TransformerConfig = read_config(&config_path)?;
        config.validate().map_err(|reason| LoadError::Config { path: config_path.clone(), reason })?;
        let ckpt = Checkpoint::open_dir(&component.dir)?;
        let model = Self::from_checkpoint(&config, &ckpt, device)?;
        Ok((model, config))
    }

    /// Builds the model from an opened checkpoint (diffusers key names), reporting every missing,
    /// unexpected or mis-shaped key at once. A plain CogVideoX checkpoint (no `traj_extractor.` /
    /// `fuser.` keys) is refused: Tora's parts are part of this model.
    pub fn from_checkpoint(
        config: &TransformerConfig,
        ckpt: &Checkpoint,
        device: &ComputeDevice,
    ) -> Result<Self, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: ckpt.source().into(), reason })?;
        let mut ld = TensorLoader::new(ckpt, device);
        if !config.use_learned_positional_embeddings {
            // Non-persistent in diffusers; a checkpoint written otherwise may still hold it.
            ld.ignore_prefix("patch_embed.pos_embedding");
        }
        let model = Self::build(config, &mut ld, device);
        ld.finish()?;
        Ok(model)
    }

    /// Random weights of `config`'s shapes (for timing; see `bench-step`).
    pub fn random(config: &TransformerConfig, device: &ComputeDevice) -> Result<Self, String> {
        config.validate()?;
        let mut src = super::layers::RandomWeights::new(device);
        Ok(Self::build(config, &mut src, device))
    }

    fn build(config: &TransformerConfig, src: &mut impl WeightSource, device: &ComputeDevice) -> Self {
        let (d, t) = (config.inner_dim(), config.time_embed_dim);
        let patch_t = config.patch_size_t.unwrap_or(1);
        let te = TeSizes::cogvideox(16, patch_t, config.num_layers);
        let traj_extractor = TrajExtractor::load(src, "traj_extractor", te);
        let fuser = (0..config.num_layers).map(|i| Mgf::load(src, &format!("fuser.{i}"), TE_CHANNELS, d)).collect();
        let patch_embed = PatchEmbed::load(src, "patch_embed", config);
        let time_proj =
            TimestepProj { dim: d, flip_sin_to_cos: config.flip_sin_to_cos, freq_shift: config.freq_shift as f64 };
        let time_embedding = TimestepEmbedding::load(src, "time_embedding", d, t);
        let (ofs_proj, ofs_embedding) = match config.ofs_embed_dim {
            Some(o) if o > 0 => (
                Some(TimestepProj {
                    dim: o,
                    flip_sin_to_cos: config.flip_sin_to_cos,
                    freq_shift: config.freq_shift as f64,
                }),
                Some(TimestepEmbedding::load(src, "ofs_embedding", o, o)),
            ),
            _ => (None, None),
        };
        let transformer_blocks =
            (0..config.num_layers).map(|i| Block::load(src, &format!("transformer_blocks.{i}"), config)).collect();
        let (eps, affine) = (config.norm_eps, config.norm_elementwise_affine);
        let norm_final = LayerNorm::load(src, "norm_final", d, eps, affine);
        let norm_out = AdaLayerNormOut {
            linear: linear(src, "norm_out.linear", 2 * d, t, true),
            norm: LayerNorm::load(src, "norm_out.norm", d, config.final_norm_eps.unwrap_or(eps), affine),
        };
        let p = config.patch_size;
        let proj_out = linear(src, "proj_out", p * p * config.out_channels(), d, true);
        ToraTransformer3D {
            config: config.clone(),
            traj_extractor,
            fuser,
            patch_embed,
            time_proj,
            time_embedding,
            ofs_proj,
            ofs_embedding,
            transformer_blocks,
            norm_final,
            norm_out,
            proj_out,
            motion_strength: 1.0,
            device: device.clone(),
        }
    }

    /// One denoising forward.
    ///
    /// - `hidden_states` `[B, F, C_in, h, w]` (latent frames before channels; I2V: the image
    ///   latents already concatenated on channels);
    /// - `encoder_hidden_states` `[B, L, d_text]`; `timestep` `[B]` (f32);
    /// - `video_flow` `[B, F, 16, h, w]`: the flow latent; `None` = plain CogVideoX;
    /// - `rotary`: the pipeline's RoPE tables; `None` on a rotary model computes them for this
    ///   input's size exactly as the pipeline would (`RotaryEmbedding::for_output`).
    ///
    /// Returns `[B, F, C_out, h, w]`.
    pub fn forward(
        &self,
        hidden_states: Tensor<5>,
        encoder_hidden_states: Tensor<3>,
        timestep: Tensor<1>,
        video_flow: Option<Tensor<5>>,
        rotary: Option<&RotaryEmbedding>,
    ) -> Tensor<5> {
        self.forward_with_ofs(hidden_states, encoder_hidden_states, timestep, video_flow, rotary, None)
    }

    /// [`Self::forward`] with the CogVideoX 1.5 I2V `ofs` input (`None` = [`DEFAULT_OFS`]); ignored
    /// by configs without an ofs embedding (Tora's).
    pub fn forward_with_ofs(
        &self,
        hidden_states: Tensor<5>,
        encoder_hidden_states: Tensor<3>,
        timestep: Tensor<1>,
        video_flow: Option<Tensor<5>>,
        rotary: Option<&RotaryEmbedding>,
        ofs: Option<Tensor<1>>,
    ) -> Tensor<5> {
        let features = video_flow.map(|flow| self.flow_features(flow));
        self.forward_guided(hidden_states, encoder_hidden_states, timestep, features.as_ref(), rotary, ofs)
    }

    /// The Trajectory Extractor's maps for `video_flow` `[B_f, F, 16, h, w]`: flow-only work a run
    /// does once and passes to every [`Self::forward_guided`] (see [`FlowFeatures`]).
    pub fn flow_features(&self, video_flow: Tensor<5>) -> FlowFeatures {
        // [B, F, 16, h, w] -> B C T H W
        FlowFeatures::compute(&self.traj_extractor, video_flow.permute([0, 2, 1, 3, 4]))
    }

    /// One denoising forward guided by precomputed [`FlowFeatures`] (`None` = plain CogVideoX)
    /// whose flow batch divides `hidden_states`' (the pipeline's batch-1 flow serves both CFG
    /// halves); otherwise as [`Self::forward_with_ofs`].
    pub fn forward_guided(
        &self,
        hidden_states: Tensor<5>,
        encoder_hidden_states: Tensor<3>,
        timestep: Tensor<1>,
        motion: Option<&FlowFeatures>,
        rotary: Option<&RotaryEmbedding>,
        ofs: Option<Tensor<1>>,
    ) -> Tensor<5> {
        let [b, f, _, h, w] = hidden_states.dims();
        let p = self.config.patch_size;
        let (hp, wp) = (h / p, w / p);
        let dtype = hidden_states.dtype();

        // 1. time (and ofs) embedding
        let t_emb = self.time_proj.forward(timestep.clone());
        let t_emb = if t_emb.dtype() == dtype { t_emb } else { t_emb.cast(dtype) };
        let mut emb = self.time_embedding.forward(t_emb);
        if let (Some(proj), Some(embedding)) = (&self.ofs_proj, &self.ofs_embedding) {
            let ofs = ofs.unwrap_or_else(|| timestep.clone().zeros_like().add_scalar(DEFAULT_OFS));
            let o = proj.forward(ofs);
            let o = if o.dtype() == dtype { o } else { o.cast(dtype) };
            emb = emb + embedding.forward(o);
        }

        // 2. patch embedding
        let text_len = encoder_hidden_states.dims()[1];
        let x = self.patch_embed.forward(encoder_hidden_states, hidden_states);
        let n = x.dims()[1] - text_len;
        let mut text = x.clone().narrow(1, 0, text_len);
        let mut video = x.narrow(1, text_len, n);

        let computed;
        let rotary = match (rotary, self.config.use_rotary_positional_embeddings) {
            (Some(r), _) => Some(r),
            (None, true) => {
                computed = RotaryEmbedding::for_grid(&self.config, f, hp, wp, &self.device);
                Some(&computed)
            }
            (None, false) => None,
        };

        // 3. blocks
        for (i, block) in self.transformer_blocks.iter().enumerate() {
            let motion = motion.map(|features| (features, i, &self.fuser[i], self.motion_strength));
            (video, text) = block.forward(video, text, emb.clone(), rotary, motion);
        }

        // 4. final norms
        let video = if self.config.use_rotary_positional_embeddings {
            self.norm_final.forward(Tensor::cat(vec![text, video], 1)).narrow(1, text_len, n)
        } else {
            self.norm_final.forward(video)
        };
        let video = self.norm_out.forward(video, emb);
        let video = self.proj_out.forward(video); // [B, N, p·p·C_out]

        // 5. unpatchify: [B, F, h/p, w/p, C, p, p] -> [B, F, C, h/p, p, w/p, p]
        let c = self.config.out_channels();
        let out: Tensor<7> = video.reshape([b, f, hp, wp, c, p, p]);
        out.permute([0, 1, 4, 2, 5, 3, 6]).reshape([b, f, c, hp * p, wp * p])
    }
}
