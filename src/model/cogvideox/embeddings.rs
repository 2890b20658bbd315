//! The transformer's input embeddings: the timestep (`Timesteps` + `TimestepEmbedding`), the
//! optional "ofs" embedding (CogVideoX 1.5 I2V), and `CogVideoXPatchEmbed` (video conv + text
//! linear, plus the learned or sin-cos positional embedding where the config has one).

use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{DType, Tensor, TensorData};

use super::layers::{linear, Conv2d, WeightSource};
use super::TransformerConfig;

/// `Timesteps(dim, flip_sin_to_cos, freq_shift)`: `[B]` -> `[B, dim]`, f32.
#[derive(Debug, Clone)]
pub struct TimestepProj {
    pub dim: usize,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
}

impl TimestepProj {
    pub fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        let half = self.dim / 2;
        let device = t.device();
        // exponent = -ln(10000)·i / (half - shift), f32; freqs = exp(exponent)
        let freqs: Vec<f32> = (0..half)
            .map(|i| {
                let e = -(10000f64.ln() as f32) * i as f32;
                (e / (half as f64 - self.freq_shift) as f32).exp()
            })
            .collect();
        let freqs = Tensor::<1>::from_data(TensorData::new(freqs, [half]), (&device, DType::F32));
        let t = if t.dtype() == DType::F32 { t } else { t.cast(DType::F32) };
        let args = t.unsqueeze_dim::<2>(1) * freqs.unsqueeze::<2>(); // [B, half]
        let (sin, cos) = (args.clone().sin(), args.cos());
        let emb = if self.flip_sin_to_cos { Tensor::cat(vec![cos, sin], 1) } else { Tensor::cat(vec![sin, cos], 1) };
        if self.dim % 2 == 1 {
            let b = emb.dims()[0];
            Tensor::cat(vec![emb, Tensor::zeros([b, 1], (&device, DType::F32))], 1)
        } else {
            emb
        }
    }
}

/// `TimestepEmbedding`: `linear_2(silu(linear_1(x)))`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn load(src: &mut impl WeightSource, key: &str, d_in: usize, d_out: usize) -> Self {
        TimestepEmbedding {
            linear_1: linear(src, &format!("{key}.linear_1"), d_out, d_in, true),
            linear_2: linear(src, &format!("{key}.linear_2"), d_out, d_out, true),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}

/// `CogVideoXPatchEmbed` (CogVideoX 1.0: a `p×p` stride-`p` conv per frame).
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    pub proj: Conv2d,
    pub text_proj: Linear,
    /// Learned `[1, text + F·(H/p)·(W/p), D]` (I2V), when the config has it and it is added.
    pub pos_embedding: Option<Tensor<3>>,
    /// Sin-cos positional embedding instead of rotary (CogVideoX-2B style configs).
    pub sincos: bool,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub max_text_seq_length: usize,
    pub sample_height: usize,
    pub sample_width: usize,
    pub sample_frames: usize,
    pub temporal_compression_ratio: usize,
    pub spatial_interpolation_scale: f64,
    pub temporal_interpolation_scale: f64,
}

impl PatchEmbed {
    pub fn load(src: &mut impl WeightSource, key: &str, config: &TransformerConfig) -> Self {
        let (p, d) = (config.patch_size, config.inner_dim());
        let proj = Conv2d::load(src, &format!("{key}.proj"), config.in_channels, d, p, p, 0, config.patch_bias);
        let text_proj = linear(src, &format!("{key}.text_proj"), d, config.text_embed_dim, true);
        let pos_embedding = if config.use_learned_positional_embeddings {
            let frames = (config.sample_frames - 1) / config.temporal_compression_ratio + 1;
            let patches = (config.sample_height / p) * (config.sample_width / p) * frames;
            let t = src.tensor(&format!("{key}.pos_embedding"), [1, config.max_text_seq_length + patches, d]);
            // Loaded either way (it is in the weights); SAT semantics never add it.
            config.add_learned_pos_embedding.then_some(t)
        } else {
            None
        };
        PatchEmbed {
            proj,
            text_proj,
            pos_embedding,
            sincos: !config.use_rotary_positional_embeddings,
            patch_size: p,
            embed_dim: d,
            max_text_seq_length: config.max_text_seq_length,
            sample_height: config.sample_height,
            sample_width: config.sample_width,
            sample_frames: config.sample_frames,
            temporal_compression_ratio: config.temporal_compression_ratio,
            spatial_interpolation_scale: config.spatial_interpolation_scale,
            temporal_interpolation_scale: config.temporal_interpolation_scale,
        }
    }

    /// `text` `[B, L, d_text]`, `video` `[B, F, C, h, w]` -> `[B, L + F·(h/p)·(w/p), D]`.
    pub fn forward(&self, text: Tensor<3>, video: Tensor<5>) -> Tensor<3> {
        let text = self.text_proj.forward(text);
        let [b, f, c, h, w] = video.dims();
        let p = self.patch_size;
        let (hp, wp) = (h / p, w / p);
        let video = self.proj.forward(video.reshape([b * f, c, h, w])); // [(B·F), D, h/p, w/p]
        let video =
            video.reshape([b, f, self.embed_dim, hp * wp]).swap_dims(2, 3).reshape([b, f * hp * wp, self.embed_dim]);
        let embeds = Tensor::cat(vec![text, video], 1); // [B, L + N, D]
        let text_len = embeds.dims()[1] - f * hp * wp;
        match self.positional(text_len, f, h, w, &embeds) {
            Some(pos) => {
                let pos = if pos.dtype() == embeds.dtype() { pos } else { pos.cast(embeds.dtype()) };
                embeds + pos
            }
            None => embeds,
        }
    }

    /// The positional embedding to add, as diffusers picks it: the learned table when the input
    /// has the sample size (the I2V case), else a sin-cos table for the input's size. (diffusers
    /// refuses a learned table at another spatial size; we fall back to sin-cos instead.)
    fn positional(&self, text_len: usize, f: usize, h: usize, w: usize, like: &Tensor<3>) -> Option<Tensor<3>> {
        let learned = self.pos_embedding.as_ref();
        if learned.is_none() && !self.sincos {
            return None;
        }
        let pre_frames = (f - 1) * self.temporal_compression_ratio + 1;
        let matches = h == self.sample_height && w == self.sample_width && pre_frames == self.sample_frames;
        let tokens = text_len + f * (h / self.patch_size) * (w / self.patch_size);
        if let (Some(table), true) = (learned, matches) {
            if table.dims()[1] == tokens {
                return Some(table.clone());
            }
        }
        let values = joint_sincos_table(
            self.embed_dim,
            text_len,
            w / self.patch_size,
            h / self.patch_size,
            f,
            self.spatial_interpolation_scale,
            self.temporal_interpolation_scale,
        );
        Some(Tensor::from_data(TensorData::new(values, [1, tokens, self.embed_dim]), (&like.device(), DType::F32)))
    }
}

/// `_get_positional_embeddings`: zeros for the text positions, then `get_3d_sincos_pos_embed`
/// (`[temporal D/4 | x 3D/8 | y 3D/8]`, each `[sin | cos]`, computed in f64 as diffusers does).
pub fn joint_sincos_table(
    dim: usize,
    text_len: usize,
    grid_w: usize,
    grid_h: usize,
    frames: usize,
    spatial_scale: f64,
    temporal_scale: f64,
) -> Vec<f32> {
    fn sincos_1d(dim: usize, pos: f32, out: &mut Vec<f32>) {
        let half = dim / 2;
        let omega: Vec<f64> = (0..half).map(|i| 1.0 / 10000f64.powf(i as f64 / (dim as f64 / 2.0))).collect();
        out.extend(omega.iter().map(|o| (pos as f64 * o).sin() as f32));
        out.extend(omega.iter().map(|o| (pos as f64 * o).cos() as f32));
    }
    let (dim_t, dim_s) = (dim / 4, 3 * dim / 4);
    let mut out = vec![0f32; text_len * dim];
    for t in 0..frames {
        let pt = t as f32 / temporal_scale as f32;
        for y in 0..grid_h {
            for x in 0..grid_w {
                sincos_1d(dim_t, pt, &mut out);
                sincos_1d(dim_s / 2, x as f32 / spatial_scale as f32, &mut out);
                sincos_1d(dim_s / 2, y as f32 / spatial_scale as f32, &mut out);
            }
        }
    }
    out
}
