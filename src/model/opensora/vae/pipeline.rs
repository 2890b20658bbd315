//! `VideoAutoencoderPipeline`: loading (the VAE folder's `config.json` + weights, and the 2D VAE
//! folder its `vae_2d.from_pretrained` names), and `encode` / `decode` with OpenSora's
//! micro-batching, so memory is bounded by one micro-batch of frames / one micro chunk of time.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};

use super::autoencoder_kl::AutoencoderKL;
use super::config::{AutoencoderKlConfig, OpenSoraVaeConfig, SPATIAL_SCALING_FACTOR};
use super::temporal::VaeTemporal;
use super::OpenSoraVaeError;
use crate::model::device::ComputeDevice;
use crate::model::load::{read_config, Checkpoint, Layout, LoadError, TensorLoader};

/// Key prefixes inside the pipeline checkpoint.
const SPATIAL_PREFIX: &str = "spatial_vae.module";
const TEMPORAL_PREFIX: &str = "temporal_vae";

/// The loaded OpenSora VAE v1.2.
pub struct OpenSoraVae {
    pub spatial_vae: AutoencoderKL,
    pub temporal_vae: VaeTemporal,
    /// `[1, channels, 1, 1, 1]`
    pub scale: Tensor<5>,
    /// `[1, channels, 1, 1, 1]`
    pub shift: Tensor<5>,
    /// Frames per 2D encode/decode call (`None` = all).
    pub micro_batch_size: Option<usize>,
    /// Frames per temporal micro chunk (`None` = the whole clip).
    pub micro_frame_size: Option<usize>,
    /// The 2D VAE folder the config pointed to.
    pub vae_2d_dir: PathBuf,
    device: ComputeDevice,
}

/// Every intermediate of one `encode` (what the parity fixtures hold).
pub struct EncodeTrace {
    /// 2D posterior mean / clamped log-variance `[B, 4, T, h, w]`.
    pub spatial_mean: Tensor<5>,
    pub spatial_logvar: Tensor<5>,
    /// 2D latents `(mean + std·noise)·0.18215` `[B, 4, T, h, w]`.
    pub x_z: Tensor<5>,
    /// Temporal posterior per micro chunk `[B, 4, t_j, h, w]`.
    pub temporal_mean: Vec<Tensor<5>>,
    pub temporal_logvar: Vec<Tensor<5>>,
    /// The normalised latents `[B, 4, T', h, w]`.
    pub z: Tensor<5>,
}

/// Every intermediate of one `decode`.
pub struct DecodeTrace {
    /// Temporal decoder output `[B, 4, T, h, w]` (before the 2D decoder's `/0.18215`).
    pub x_z: Tensor<5>,
    /// `[B, 3, T, H, W]`
    pub frames: Tensor<5>,
}

/// The VAE folder: `dir` itself when its `config.json` is a pipeline config, else `dir/vae`.
fn find_vae_dir(dir: &Path) -> Result<PathBuf, LoadError> {
    if !dir.is_dir() {
        return Err(LoadError::NotFound { path: dir.into(), hint: " (expected the OpenSora VAE folder)".into() });
    }
    for candidate in [dir.to_path_buf(), dir.join("vae")] {
        let config = candidate.join("config.json");
        if config.is_file() {
            let value: serde_json::Value = read_config(&config)?;
            let is_pipeline = value.get("model_type").and_then(|v| v.as_str()) == Some("VideoAutoencoderPipeline")
                || value.get("vae_2d").is_some();
            if is_pipeline {
                return Ok(candidate);
            }
        }
    }
    Err(LoadError::NotFound {
        path: dir.join("vae").join("config.json"),
        hint: " (give the OpenSora VAE folder, whose config.json is a VideoAutoencoderPipeline config, or its parent)"
            .into(),
    })
}

/// Where `vae_2d.from_pretrained` (+ `subfolder`) may be, most likely first: relative to the
/// folder holding the VAE folder (as a HF repo id is laid out next to it), relative to the VAE
/// folder, and by the repo's name alone (`owner/name` downloaded as `name`).
fn vae_2d_candidates(vae_dir: &Path, from_pretrained: &str, subfolder: Option<&str>) -> Vec<PathBuf> {
    let named = Path::new(from_pretrained);
    let parent = vae_dir.parent().unwrap_or(Path::new("."));
    let mut roots =
        if named.is_absolute() { vec![named.to_path_buf()] } else { vec![parent.join(named), vae_dir.join(named)] };
    if let Some(name) = named.file_name() {
        if named.components().count() > 1 && !named.is_absolute() {
            roots.push(parent.join(name));
        }
    }
    roots
        .into_iter()
        .map(|r| match subfolder {
            Some(s) if !s.is_empty() => r.join(s),
            _ => r,
        })
        .collect()
}

impl OpenSoraVae {
    /// Loads the VAE from its folder (`config.json` + safetensors; `dir` may also be its parent)
    /// and the 2D VAE config from the folder `vae_2d.from_pretrained` names. 2D weights come from
    /// the pipeline checkpoint (`spatial_vae.module.*`) when it holds them, else from that folder.
    pub fn load(dir: &Path, device: &ComputeDevice) -> Result<(Self, OpenSoraVaeConfig), LoadError> {
        let vae_dir = find_vae_dir(dir)?;
        let config_path = vae_dir.join("config.json");
        let config: OpenSoraVaeConfig = read_config(&config_path)?;
        let bad = |reason: String| LoadError::Config { path: config_path.clone(), reason };
        if config.cal_loss {
            return Err(bad("cal_loss = true (training mode) is not supported".into()));
        }
        if config.vae_2d.kind != "VideoAutoencoderKL" {
            return Err(LoadError::Unsupported {
                path: config_path.clone(),
                reason: format!("vae_2d type {:?} (supported: VideoAutoencoderKL)", config.vae_2d.kind),
            });
        }
        if config.micro_frame_size == Some(0) || config.vae_2d.micro_batch_size == Some(0) {
            return Err(bad("micro_frame_size and vae_2d.micro_batch_size must be positive".into()));
        }
        let temporal_args = config.vae_temporal.args().map_err(bad)?;

        // The 2D VAE folder named by the config.
        let candidates =
            vae_2d_candidates(&vae_dir, &config.vae_2d.from_pretrained, config.vae_2d.subfolder.as_deref());
        let vae_2d_dir = candidates.iter().find(|c| c.join("config.json").is_file()).cloned().ok_or_else(|| {
            let others: Vec<String> = candidates.iter().skip(1).map(|c| c.display().to_string()).collect();
            LoadError::NotFound {
                path: candidates[0].join("config.json"),
                hint: format!(
                    " (the 2D VAE that vae_2d.from_pretrained = {:?} in {} names; also looked in: {}; download \
                     that diffusers AutoencoderKL folder there)",
                    config.vae_2d.from_pretrained,
                    config_path.display(),
                    others.join(", ")
                ),
            }
        })?;
        let kl_config_path = vae_2d_dir.join("config.json");
        let kl_config: AutoencoderKlConfig = read_config(&kl_config_path)?;
        kl_config.validate().map_err(|reason| LoadError::Config { path: kl_config_path.clone(), reason })?;
        if kl_config.latent_channels != temporal_args.in_out_channels {
            return Err(bad(format!(
                "the 2D VAE has {} latent channels but vae_temporal takes {}",
                kl_config.latent_channels, temporal_args.in_out_channels
            )));
        }

        let ckpt = Checkpoint::open_dir(&vae_dir)?;
        let mut ld = TensorLoader::new(&ckpt, device);
        let spatial_in_pipeline = ckpt.keys().any(|k| k.starts_with(&format!("{SPATIAL_PREFIX}.")));
        let spatial_vae = if spatial_in_pipeline {
            AutoencoderKL::load(&mut ld, SPATIAL_PREFIX, &kl_config)
        } else {
            let ckpt_2d = Checkpoint::open_dir(&vae_2d_dir)?;
            let mut ld_2d = TensorLoader::new(&ckpt_2d, device);
            let vae = AutoencoderKL::load(&mut ld_2d, "", &kl_config);
            ld_2d.finish()?;
            vae
        };
        let temporal_vae = VaeTemporal::load(&mut ld, TEMPORAL_PREFIX, &temporal_args);
        // The normalisation buffers: the checkpoint's values when it has them (as transformers
        // loads them), else the config's.
        let channels = temporal_args.embed_dim;
        let mut buffer = |name: &str, fallback: &super::config::ScaleShift| -> Result<Tensor<5>, LoadError> {
            let values = if ckpt.contains(name) {
                ld.ignore_prefix(name);
                let (values, shape) = ckpt.read_f32(name, Layout::AsStored)?;
                match values.len() {
                    1 => vec![values[0] as f64; channels],
                    n if n == channels => values.iter().map(|&v| v as f64).collect(),
                    _ => {
                        return Err(LoadError::Keys {
                            dir: ckpt.source().into(),
                            missing: vec![],
                            unexpected: vec![],
                            mismatched: vec![crate::model::load::ShapeMismatch {
                                key: name.into(),
                                file: ckpt.file_of(name).map(Path::to_path_buf).unwrap_or_default(),
                                expected: vec![1, channels, 1, 1, 1],
                                found: shape,
                            }],
                        })
                    }
                }
            } else {
                fallback.per_channel(channels).map_err(|r| bad(format!("{name}: {r}")))?
            };
            let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
            Ok(device.float_tensor(TensorData::new(values, [1, channels, 1, 1, 1])))
        };
        let scale = buffer("scale", &config.scale)?;
        let shift = buffer("shift", &config.shift)?;
        ld.finish()?;
        let vae = OpenSoraVae {
            spatial_vae,
            temporal_vae,
            scale,
            shift,
            micro_batch_size: config.vae_2d.micro_batch_size,
            micro_frame_size: config.micro_frame_size,
            vae_2d_dir,
            device: device.clone(),
        };
        Ok((vae, config))
    }

    /// The VAE folder `load` would use for `dir` (the folder itself or its `vae/`), if any.
    pub fn find_dir(dir: &Path) -> Result<PathBuf, LoadError> {
        find_vae_dir(dir)
    }

    pub fn device(&self) -> &ComputeDevice {
        &self.device
    }

    /// Latent frames of a `num_frames` clip (`VideoAutoencoderPipeline.get_latent_size`).
    pub fn latent_frames(&self, num_frames: usize) -> usize {
        let t = &self.temporal_vae.args;
        match self.micro_frame_size {
            None => t.latent_frames(num_frames),
            Some(m) => {
                let rest = num_frames % m;
                (num_frames / m) * t.latent_frames(m) + if rest > 0 { t.latent_frames(rest) } else { 0 }
            }
        }
    }

    /// Latent side length of a `pixels` long image side (`None` if too small to encode).
    pub fn latent_len(&self, pixels: usize) -> Option<usize> {
        self.spatial_vae.latent_len(pixels)
    }

    /// `video` `[B, 3, T, H, W]` in (−1, 1) → normalised latents `[B, 4, T', h, w]`. `noise` is
    /// called once per posterior sample, in the reference's order (each 2D micro-batch, then
    /// each temporal chunk), with the draw's shape; it returns that many standard-normal values
    /// (row-major) on this model's device.
    pub fn encode(
        &self,
        video: Tensor<5>,
        noise: &mut dyn FnMut(&[usize]) -> Tensor<1>,
    ) -> Result<Tensor<5>, OpenSoraVaeError> {
        self.run_encode(video, noise, false).map(|(z, _)| z)
    }

    /// [`Self::encode`], keeping every intermediate.
    pub fn encode_traced(
        &self,
        video: Tensor<5>,
        noise: &mut dyn FnMut(&[usize]) -> Tensor<1>,
    ) -> Result<EncodeTrace, OpenSoraVaeError> {
        let (_, trace) = self.run_encode(video, noise, true)?;
        trace.ok_or_else(|| OpenSoraVaeError::Input("the trace was not kept".into()))
    }

    /// Normalised latents `[B, 4, T', h, w]` → video `[B, 3, num_frames, H, W]`; `T'` must be
    /// [`Self::latent_frames`]`(num_frames)`.
    pub fn decode(&self, z: Tensor<5>, num_frames: usize) -> Result<Tensor<5>, OpenSoraVaeError> {
        self.decode_traced(z, num_frames).map(|t| t.frames)
    }

    /// [`Self::decode`], keeping the temporal decoder's output.
    pub fn decode_traced(&self, z: Tensor<5>, num_frames: usize) -> Result<DecodeTrace, OpenSoraVaeError> {
        let [b, c, t, h, w] = z.dims();
        let embed = self.temporal_vae.args.embed_dim;
        if b == 0 || c != embed || h == 0 || w == 0 {
            return Err(OpenSoraVaeError::Input(format!("latents {:?} are not [batch, {embed}, t, h, w]", z.dims())));
        }
        if num_frames == 0 || self.latent_frames(num_frames) != t {
            return Err(OpenSoraVaeError::Input(format!(
                "{num_frames} frames have {} latent frames, the latents have {t}",
                self.latent_frames(num_frames)
            )));
        }
        let z = z * self.scale.clone() + self.shift.clone();
        let x_z = match self.micro_frame_size {
            None => self.temporal_vae.decode(z, num_frames),
            Some(m) => {
                // Latent chunk j decodes to min(m, frames left) frames.
                let micro_z = self.temporal_vae.args.latent_frames(m);
                let mut chunks = Vec::new();
                let mut left = num_frames;
                for start in (0..t).step_by(micro_z) {
                    let len = micro_z.min(t - start);
                    chunks.push(self.temporal_vae.decode(z.clone().narrow(2, start, len), m.min(left)));
                    left = left.saturating_sub(m);
                }
                Tensor::cat(chunks, 2)
            }
        }; // [B, 4, T, h, w]
        let frames = self.decode_spatial(x_z.clone());
        Ok(DecodeTrace { x_z, frames })
    }

    /// 2D decode of every frame of `x_z` `[B, 4, T, h, w]`, a micro-batch of frames at a time.
    fn decode_spatial(&self, x_z: Tensor<5>) -> Tensor<5> {
        let [b, c, t, h, w] = x_z.dims();
        let frames = x_z.swap_dims(1, 2).reshape([b * t, c, h, w]); // [(B T), 4, h, w]
        let n = b * t;
        let step = self.micro_batch_size.unwrap_or(n);
        let decoded: Vec<Tensor<4>> = (0..n)
            .step_by(step)
            .map(|start| {
                let chunk = frames.clone().narrow(0, start, step.min(n - start));
                self.spatial_vae.decode(chunk.div_scalar(SPATIAL_SCALING_FACTOR))
            })
            .collect();
        from_frames(Tensor::cat(decoded, 0), b, t)
    }

    fn run_encode(
        &self,
        video: Tensor<5>,
        noise: &mut dyn FnMut(&[usize]) -> Tensor<1>,
        keep: bool,
    ) -> Result<(Tensor<5>, Option<EncodeTrace>), OpenSoraVaeError> {
        let [b, c, t, h, w] = video.dims();
        let in_channels = self.spatial_vae.in_channels;
        if b == 0 || t == 0 || c != in_channels {
            return Err(OpenSoraVaeError::Input(format!(
                "video {:?} is not [batch, {in_channels}, frames, height, width]",
                video.dims()
            )));
        }
        let (Some(lh), Some(lw)) = (self.latent_len(h), self.latent_len(w)) else {
            return Err(OpenSoraVaeError::Input(format!("a {h}×{w} frame is too small for the 2D VAE")));
        };
        let latent = self.spatial_vae.latent_channels;
        let mut draws = 0usize;
        let mut draw = |shape: &[usize]| -> Result<Tensor<1>, OpenSoraVaeError> {
            let values = noise(shape);
            let expected: usize = shape.iter().product();
            let got = values.dims()[0];
            draws += 1;
            if got != expected {
                return Err(OpenSoraVaeError::Noise { index: draws - 1, shape: shape.to_vec(), got, expected });
            }
            Ok(values)
        };

        // 2D: frames (B T) in micro-batches, each sampled with its own draw.
        let frames = video.swap_dims(1, 2).reshape([b * t, c, h, w]); // [(B T), 3, H, W]
        let n = b * t;
        let step = self.micro_batch_size.unwrap_or(n);
        let (mut x_z, mut means, mut logvars) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..n).step_by(step) {
            let len = step.min(n - start);
            let posterior = self.spatial_vae.encode(frames.clone().narrow(0, start, len));
            let eps = draw(&[len, latent, lh, lw])?.reshape([len, latent, lh, lw]);
            x_z.push(posterior.sample(eps).mul_scalar(SPATIAL_SCALING_FACTOR)); // [len, 4, h, w]
            if keep {
                means.push(posterior.mean);
                logvars.push(posterior.logvar);
            }
        }
        let x_z = from_frames(Tensor::cat(x_z, 0), b, t); // [B, 4, T, h, w]

        // Temporal: micro chunks of frames, each sampled with its own draw.
        let chunk = self.micro_frame_size.unwrap_or(t);
        let embed = self.temporal_vae.args.embed_dim;
        let (mut z, mut t_means, mut t_logvars) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..t).step_by(chunk) {
            let posterior = self.temporal_vae.encode(x_z.clone().narrow(2, start, chunk.min(t - start)));
            let lt = posterior.mean.dims()[2];
            let eps = draw(&[b, embed, lt, lh, lw])?.reshape([b, embed, lt, lh, lw]);
            z.push(posterior.sample(eps));
            if keep {
                t_means.push(posterior.mean);
                t_logvars.push(posterior.logvar);
            }
        }
        let z = (Tensor::cat(z, 2) - self.shift.clone()) / self.scale.clone();

        let trace = keep.then(|| EncodeTrace {
            spatial_mean: from_frames(Tensor::cat(means, 0), b, t),
            spatial_logvar: from_frames(Tensor::cat(logvars, 0), b, t),
            x_z,
            temporal_mean: t_means,
            temporal_logvar: t_logvars,
            z: z.clone(),
        });
        Ok((z, trace))
    }
}

/// `rearrange("(B T) C H W -> B C T H W")`.
fn from_frames(x: Tensor<4>, b: usize, t: usize) -> Tensor<5> {
    let [_, c, h, w] = x.dims();
    x.reshape([b, t, c, h, w]).swap_dims(1, 2)
}
