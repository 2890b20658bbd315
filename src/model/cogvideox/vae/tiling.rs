//! Spatial tiling with overlap-blend (diffusers `tiled_encode` / `tiled_decode`): the input is cut
//! into overlapping tiles, each run through the whole frame-batched coder on its own, then every
//! tile is linearly blended into its (already blended) upper and left neighbours over the overlap
//! and cropped. Tiles run one at a time, so memory is bounded by the tile size, not the frame.

use burn::tensor::{Tensor, TensorData};

use super::config::VaeConfig;

/// Tile sizes (pixels and latents) and overlap factors; `from_config` gives diffusers' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tiling {
    pub tile_sample_min_height: usize,
    pub tile_sample_min_width: usize,
    pub tile_latent_min_height: usize,
    pub tile_latent_min_width: usize,
    pub tile_overlap_factor_height: f64,
    pub tile_overlap_factor_width: f64,
}

impl Tiling {
    /// Half the model's `sample_height/width`, latents `/ 2^(blocks-1)`, overlaps 1/6 and 1/5.
    pub fn from_config(cfg: &VaeConfig) -> Self {
        Tiling::with_sample_tile(cfg, cfg.sample_height / 2, cfg.sample_width / 2)
    }

    /// Custom pixel tile size (`enable_tiling(tile_sample_min_height, ...)`).
    pub fn with_sample_tile(cfg: &VaeConfig, height: usize, width: usize) -> Self {
        let ratio = cfg.spatial_ratio() as f64;
        Tiling {
            tile_sample_min_height: height,
            tile_sample_min_width: width,
            tile_latent_min_height: (height as f64 / ratio) as usize,
            tile_latent_min_width: (width as f64 / ratio) as usize,
            tile_overlap_factor_height: 1.0 / 6.0,
            tile_overlap_factor_width: 1.0 / 5.0,
        }
    }
}

/// One axis of a tiled run, in input and output units.
#[derive(Debug, Clone, Copy)]
pub struct TileAxis {
    /// Input tile size.
    pub tile: usize,
    /// Input distance between tile starts.
    pub step: usize,
    /// Output rows/columns blended with the neighbour.
    pub blend: usize,
    /// Output rows/columns each tile contributes.
    pub keep: usize,
}

impl TileAxis {
    /// `tile_in` (input units) overlapping by `factor`; `tile_out` is the tile's output size.
    pub fn new(tile_in: usize, tile_out: usize, factor: f64) -> Self {
        let blend = (tile_out as f64 * factor) as usize;
        TileAxis {
            tile: tile_in,
            step: ((tile_in as f64 * (1.0 - factor)) as usize).max(1),
            blend,
            keep: tile_out - blend,
        }
    }
}

/// Runs `code` on each tile of `x` `[b, c, t, H, W]` and blends the outputs.
pub fn tiled(x: Tensor<5>, rows: TileAxis, cols: TileAxis, mut code: impl FnMut(Tensor<5>) -> Tensor<5>) -> Tensor<5> {
    let [_, _, _, h, w] = x.dims();
    let mut previous_row: Vec<Tensor<5>> = Vec::new();
    let mut out_rows = Vec::new();
    for i in (0..h).step_by(rows.step) {
        let mut row: Vec<Tensor<5>> = Vec::new();
        let mut kept = Vec::new();
        for (jj, j) in (0..w).step_by(cols.step).enumerate() {
            let tile_h = rows.tile.min(h - i);
            let tile_w = cols.tile.min(w - j);
            let input = x.clone().narrow(3, i, tile_h).narrow(4, j, tile_w);
            let mut tile = code(input); // [b, c', t', th, tw]
            if let Some(above) = previous_row.get(jj) {
                tile = blend(above.clone(), tile, rows.blend, 3);
            }
            if let Some(left) = row.last() {
                tile = blend(left.clone(), tile, cols.blend, 4);
            }
            let [_, _, _, th, tw] = tile.dims();
            kept.push(tile.clone().narrow(3, 0, rows.keep.min(th)).narrow(4, 0, cols.keep.min(tw)));
            row.push(tile);
        }
        out_rows.push(Tensor::cat(kept, 4));
        previous_row = row;
    }
    Tensor::cat(out_rows, 3)
}

/// `blend_v` (dim 3) / `blend_h` (dim 4): the first `e` rows of `b` become
/// `a[-e + y] · (1 - y/e) + b[y] · (y/e)`, weights computed in f64 and used in f32 like torch.
fn blend(a: Tensor<5>, b: Tensor<5>, extent: usize, dim: usize) -> Tensor<5> {
    let (na, nb) = (a.dims()[dim], b.dims()[dim]);
    let e = extent.min(na).min(nb);
    if e == 0 {
        return b;
    }
    let weights = |f: &dyn Fn(f64) -> f64| {
        let v: Vec<f32> = (0..e).map(|y| f(y as f64 / e as f64) as f32).collect();
        let mut shape = [1usize; 5];
        shape[dim] = e;
        Tensor::<5>::from_data(TensorData::new(v, shape), (&b.device(), b.dtype()))
    };
    let keep_a = weights(&|r| 1.0 - r);
    let keep_b = weights(&|r| r);
    let a_tail = a.narrow(dim, na - e, e);
    let b_head = b.clone().narrow(dim, 0, e);
    let mixed = a_tail.mul(keep_a).add(b_head.mul(keep_b));
    if e == nb {
        return mixed;
    }
    Tensor::cat(vec![mixed, b.narrow(dim, e, nb - e)], dim)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::{tiled, TileAxis};
    use crate::model::cogvideox::vae::nearest::resize_thw;
    use crate::model::{ComputeDevice, Precision};
    use crate::Backend;

    /// With a coder that commutes with shifts (here nearest ×8 upsampling, the decoder's geometry:
    /// 6×5 latent tiles -> 48×40 pixels, overlaps 1/6 and 1/5), the tiled result equals the
    /// untiled one up to the blend's rounding: tile placement, blend ramps and crops line up.
    #[test]
    fn tiled_equals_untiled_for_a_shift_equivariant_coder() {
        let device = ComputeDevice::new(Backend::Cpu, Precision::F32).unwrap();
        let up8 = |x: Tensor<5>| {
            let [_, _, t, h, w] = x.dims();
            resize_thw(x, [t, 8 * h, 8 * w])
        };
        for (h, w) in [(8, 7), (6, 9), (13, 11), (6, 5)] {
            let x = Tensor::<5>::random([1, 2, 3, h, w], Distribution::Normal(0.0, 1.0), device.device());
            let rows = TileAxis::new(6, 48, 1.0 / 6.0);
            let cols = TileAxis::new(5, 40, 1.0 / 5.0);
            let a: Vec<f32> = tiled(x.clone(), rows, cols, up8).into_data().try_to_vec::<f32>().unwrap();
            let b: Vec<f32> = up8(x).into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(a.len(), b.len(), "{h}x{w}");
            let err = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "{h}x{w}: {err}");
        }
    }
}
