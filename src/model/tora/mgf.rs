//! Tora's Motion-guidance Fuser (MGF): adaptive normalisation that injects a TE feature map into
//! a DiT layer's (normalised, modulated) video tokens:
//!
//! ```text
//! γ = Conv1d_t(Conv2d_s(feature)),  β = Conv1d_t(Conv2d_s(feature))   (3×3 spatial, pad 1;
//!                                                                       k=3 temporal, replicate pad)
//! h' = h + GroupNorm32(h)·γ + β
//! ```
//!
//! Keys (`fuser.{i}.`): `flow_gamma_spatial`, `flow_gamma_temporal`, `flow_beta_spatial`,
//! `flow_beta_temporal`, `flow_cond_norm`.

use burn::tensor::Tensor;

use crate::model::cogvideox::layers::{Conv2d, GroupNorm, ReplicateConv1d, WeightSource};

/// `FloatGroupNorm(32, C)`; GroupNorm's default eps.
const GROUPS: usize = 32;
const GN_EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
pub struct Mgf {
    pub flow_gamma_spatial: Conv2d,
    pub flow_gamma_temporal: ReplicateConv1d,
    pub flow_beta_spatial: Conv2d,
    pub flow_beta_temporal: ReplicateConv1d,
    pub flow_cond_norm: GroupNorm,
}

impl Mgf {
    /// `key` e.g. `fuser.3`; `flow_channels` = TE channels (128), `channels` = the DiT's width.
    pub fn load(src: &mut impl WeightSource, key: &str, flow_channels: usize, channels: usize) -> Self {
        let quarter = channels / 4;
        Mgf {
            flow_gamma_spatial: Conv2d::load(
                src,
                &format!("{key}.flow_gamma_spatial"),
                flow_channels,
                quarter,
                3,
                1,
                1,
                true,
            ),
            flow_gamma_temporal: ReplicateConv1d::load(
                src,
                &format!("{key}.flow_gamma_temporal"),
                quarter,
                channels,
                3,
            ),
            flow_beta_spatial: Conv2d::load(
                src,
                &format!("{key}.flow_beta_spatial"),
                flow_channels,
                quarter,
                3,
                1,
                1,
                true,
            ),
            flow_beta_temporal: ReplicateConv1d::load(src, &format!("{key}.flow_beta_temporal"), quarter, channels, 3),
            flow_cond_norm: GroupNorm::load(src, &format!("{key}.flow_cond_norm"), GROUPS, channels, GN_EPS),
        }
    }

    /// `h` `[(B·T), C, H, W]`, `flow` `[(B·T), 128, H, W]`, `frames` = T -> `[(B·T), C, H, W]`.
    pub fn forward(&self, h: Tensor<4>, flow: Tensor<4>, frames: usize) -> Tensor<4> {
        self.forward_scaled(h, flow, frames, 1.0)
    }

    /// `h + s·(GroupNorm(h)·γ + β)`: the studio's trajectory strength `s` scales the motion
    /// guidance (s = 1 is Tora as trained, computed exactly as [`Self::forward`]).
    pub fn forward_scaled(&self, h: Tensor<4>, flow: Tensor<4>, frames: usize, strength: f32) -> Tensor<4> {
        self.apply(h, &self.modulation(flow, frames), frames, strength)
    }

    /// γ and β of one TE feature map `[(B_f·T), 128, H, W]`. They depend on the flow alone, so a
    /// run computes them at the flow's own batch (1), not once per CFG half.
    pub fn modulation(&self, flow: Tensor<4>, frames: usize) -> Modulation {
        let gamma = temporal(&self.flow_gamma_temporal, self.flow_gamma_spatial.forward(flow.clone()), frames);
        let beta = temporal(&self.flow_beta_temporal, self.flow_beta_spatial.forward(flow), frames);
        Modulation { gamma, beta }
    }

    /// `h + s·(GroupNorm(h)·γ + β)` with `h` `[(B·T), C, H, W]` and γ, β of a flow batch `B_f`
    /// dividing `B`: batch `b` of `h` takes flow `b mod B_f` (the flow tiled over the batch, as the
    /// pipelines' CFG halves share one flow), by broadcasting rather than copying γ and β.
    pub fn apply(&self, h: Tensor<4>, modulation: &Modulation, frames: usize, strength: f32) -> Tensor<4> {
        let [bt, c, hh, ww] = h.dims();
        let flow_bt = modulation.gamma.dims()[0];
        debug_assert!(flow_bt > 0 && bt % flow_bt == 0 && flow_bt % frames == 0, "flow batch must divide h's");
        // [(k·B_f·T), C, H, W] -> [k, (B_f·T), C, H, W] against γ, β as [1, (B_f·T), C, H, W]
        let tiles = bt / flow_bt;
        let tiled = |t: Tensor<4>| t.reshape([tiles, flow_bt, c, hh, ww]);
        let wide = |t: &Tensor<4>| t.clone().reshape([1, flow_bt, c, hh, ww]);
        let normed = tiled(self.flow_cond_norm.forward(h.clone()));
        let (gamma, beta) = (wide(&modulation.gamma), wide(&modulation.beta));
        let out = if strength == 1.0 {
            tiled(h) + normed * gamma + beta
        } else {
            tiled(h) + (normed * gamma + beta).mul_scalar(strength)
        };
        out.reshape([bt, c, hh, ww])
    }
}

/// One fuser's γ and β for one flow, `[(B_f·T), C, H, W]` each.
#[derive(Debug, Clone)]
pub struct Modulation {
    pub gamma: Tensor<4>,
    pub beta: Tensor<4>,
}

/// `(b f) c h w -> (b h w) c f`, the temporal conv, and back.
fn temporal(conv: &ReplicateConv1d, x: Tensor<4>, frames: usize) -> Tensor<4> {
    let [bf, c, h, w] = x.dims();
    let b = bf / frames;
    let x = x.reshape([b, frames, c, h, w]).permute([0, 3, 4, 2, 1]).reshape([b * h * w, c, frames]);
    let y = conv.forward(x); // [(B·H·W), C_out, T]
    let c_out = y.dims()[1];
    y.reshape([b, h, w, c_out, frames]).permute([0, 4, 3, 1, 2]).reshape([bf, c_out, h, w])
}
