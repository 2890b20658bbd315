//! Tora's flow-only work, done once per run: the Trajectory Extractor's feature maps depend on the
//! flow latent alone, so a pipeline computes them once, at the flow's own batch (1), and every
//! denoising step (and both CFG halves) reuses them.
//!
//! What is kept and what is recomputed, at Tora's real size (49×480×720 → latents 13×60×90, TE
//! maps 13×30×45, DiT width 3072, 42 layers):
//! - the TE maps: 42 × 13·128·30·45 values = 189 MB in f16 (377 MB f32): kept;
//! - each MGF's γ and β: 42 × 2 × 13·3072·30·45 values = 9.1 GB in f16 (18.1 GB f32), over a third
//!   of a 24 GB card: not kept. They are recomputed each step from the kept maps, at batch 1
//!   (≈0.56 TFLOP per layer, ≈3.5 % of a CFG step's ≈660 TFLOP) and broadcast over the CFG batch.

use burn::tensor::Tensor;

use super::{Mgf, TrajExtractor};

/// The TE's feature map for every backbone layer, for one flow latent.
#[derive(Debug, Clone)]
pub struct FlowFeatures {
    /// One per layer, `[(B_f·T'), 128, H', W']`.
    maps: Vec<Tensor<4>>,
    /// `[B_f, T, h, w]` of the flow latent the maps came from (before the TE's patchify).
    flow_dims: [usize; 4],
    /// Frames of the maps (`T'` = T over the temporal patch, rounded up).
    frames: usize,
    /// `[H', W']` of the maps (h, w over the spatial patch, rounded up).
    map_size: [usize; 2],
}

impl FlowFeatures {
    /// Runs the TE on `flow` `[B_f, C, T, h, w]` (channels before frames).
    pub fn compute(extractor: &TrajExtractor, flow: Tensor<5>) -> Self {
        let [b, _, t, h, w] = flow.dims();
        let [pt, ph, pw] = extractor.sizes.patch;
        let (frames, map_size) = (t.div_ceil(pt), [h.div_ceil(ph), w.div_ceil(pw)]);
        FlowFeatures { maps: extractor.forward(flow), flow_dims: [b, t, h, w], frames, map_size }
    }

    /// The flow latent's batch, frames, height and width.
    pub fn flow_dims(&self) -> [usize; 4] {
        self.flow_dims
    }

    /// Frames of the maps (the flow's frames over the TE's temporal patch).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// `[H', W']` of the maps.
    pub fn map_size(&self) -> [usize; 2] {
        self.map_size
    }

    pub fn layers(&self) -> usize {
        self.maps.len()
    }

    /// Layer `layer`'s map, if the TE has that many layers.
    pub fn map(&self, layer: usize) -> Option<&Tensor<4>> {
        self.maps.get(layer)
    }

    /// Fuses layer `layer`'s motion into `h` `[(B·T'), C, H', W']` (`B` a multiple of the flow's
    /// batch): γ and β at the flow's batch, broadcast over `h`'s; `h` unchanged past the TE's layers.
    pub fn fuse(&self, fuser: &Mgf, layer: usize, h: Tensor<4>, strength: f32) -> Tensor<4> {
        match self.maps.get(layer) {
            Some(map) => {
                let modulation = fuser.modulation(map.clone(), self.frames);
                fuser.apply(h, &modulation, self.frames, strength)
            }
            None => h,
        }
    }
}
