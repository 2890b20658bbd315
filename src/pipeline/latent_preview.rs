//! A cheap RGB preview of latents while the clip denoises.
//!
//! Decoding with the VAE at every step would cost as much as the final decode, so the preview
//! uses a linear map `rgb ≈ W·latent + b` per latent pixel (one pixel per 8×8 block). The map is
//! not a table copied from elsewhere: it is fitted, by least squares, to what this model's own VAE
//! decoder makes of a few small latents (see [`LatentToRgb::fit`]), so it follows whatever
//! latent space the loaded VAE has.

/// One preview frame per latent frame, `width × height` RGB8 (latent resolution).
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewClip {
    pub width: usize,
    pub height: usize,
    /// One `width * height * 3` buffer per latent frame.
    pub frames: Vec<Vec<u8>>,
}

/// `rgb[k] = bias[k] + Σ_c weights[c][k] · latent[c]`, rgb in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct LatentToRgb {
    pub weights: Vec<[f32; 3]>,
    pub bias: [f32; 3],
}

impl LatentToRgb {
    /// Fits the map to samples: `latents` `[channels][n]` (channel-major) and the decoded colours
    /// `rgb` `[3][n]` at the same latent pixels. A small ridge term keeps the solve stable when
    /// channels are nearly collinear. `None` when there are fewer samples than unknowns.
    pub fn fit(latents: &[f32], rgb: &[f32], channels: usize) -> Option<Self> {
        let n = rgb.len() / 3;
        if n <= channels || latents.len() != channels * n {
            return None;
        }
        let dim = channels + 1; // + bias
        let feature = |c: usize, i: usize| if c == channels { 1.0 } else { latents[c * n + i] as f64 };
        // Normal equations (XᵀX + λI) w = Xᵀy for the three colour channels at once.
        let mut ata = vec![0f64; dim * dim];
        let mut aty = vec![[0f64; 3]; dim];
        for i in 0..n {
            for a in 0..dim {
                let fa = feature(a, i);
                for b in 0..dim {
                    ata[a * dim + b] += fa * feature(b, i);
                }
                for k in 0..3 {
                    aty[a][k] += fa * rgb[k * n + i] as f64;
                }
            }
        }
        let ridge = 1e-3 * n as f64;
        for a in 0..channels {
            ata[a * dim + a] += ridge;
        }
        let solution = solve(ata, aty, dim)?;
        let weights = solution[..channels].iter().map(|w| w.map(|v| v as f32)).collect();
        let bias = solution[channels].map(|v| v as f32);
        Some(LatentToRgb { weights, bias })
    }

    /// Preview frames of a latent clip `[frames, channels, height, width]` (flattened).
    pub fn preview(&self, latent: &[f32], frames: usize, height: usize, width: usize) -> PreviewClip {
        let channels = self.weights.len();
        let plane = height * width;
        let mut out = Vec::with_capacity(frames);
        for f in 0..frames {
            let base = f * channels * plane;
            let mut rgb = vec![0u8; plane * 3];
            for p in 0..plane {
                let mut colour = self.bias;
                for (c, w) in self.weights.iter().enumerate() {
                    let v = latent.get(base + c * plane + p).copied().unwrap_or(0.0);
                    for k in 0..3 {
                        colour[k] += w[k] * v;
                    }
                }
                for k in 0..3 {
                    rgb[p * 3 + k] = ((colour[k] * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            out.push(rgb);
        }
        PreviewClip { width, height, frames: out }
    }
}

/// Gaussian elimination with partial pivoting on a small dense system with 3 right-hand sides.
fn solve(mut a: Vec<f64>, mut y: Vec<[f64; 3]>, dim: usize) -> Option<Vec<[f64; 3]>> {
    for col in 0..dim {
        let pivot = (col..dim).max_by(|&i, &j| a[i * dim + col].abs().total_cmp(&a[j * dim + col].abs()))?;
        if a[pivot * dim + col].abs() < 1e-12 {
            return None;
        }
        if pivot != col {
            for k in 0..dim {
                a.swap(pivot * dim + k, col * dim + k);
            }
            y.swap(pivot, col);
        }
        for row in col + 1..dim {
            let factor = a[row * dim + col] / a[col * dim + col];
            if factor == 0.0 {
                continue;
            }
            for k in col..dim {
                a[row * dim + k] -= factor * a[col * dim + k];
            }
            let yc = y[col];
            for k in 0..3 {
                y[row][k] -= factor * yc[k];
            }
        }
    }
    let mut x = vec![[0f64; 3]; dim];
    for row in (0..dim).rev() {
        let mut acc = y[row];
        for k in row + 1..dim {
            for c in 0..3 {
                acc[c] -= a[row * dim + k] * x[k][c];
            }
        }
        for c in 0..3 {
            x[row][c] = acc[c] / a[row * dim + row];
        }
    }
    Some(x)
}

/// Average-pools an `[3, H, W]` image down by `factor` to `[3, H/factor, W/factor]`.
pub fn pool_rgb(rgb: &[f32], height: usize, width: usize, factor: usize) -> Vec<f32> {
    let (h, w) = (height / factor, width / factor);
    let mut out = vec![0f32; 3 * h * w];
    let norm = 1.0 / (factor * factor) as f32;
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0f32;
                for dy in 0..factor {
                    for dx in 0..factor {
                        sum += rgb[c * height * width + (y * factor + dy) * width + x * factor + dx];
                    }
                }
                out[c * h * w + y * w + x] = sum * norm;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)] // indices mirror the matrix notation
    fn recovers_an_exact_linear_map() {
        let channels = 4;
        let n = 50;
        let true_w = [[0.5f32, -0.2, 0.1], [0.0, 0.3, -0.4], [0.2, 0.2, 0.2], [-0.6, 0.1, 0.0]];
        let true_b = [0.05f32, -0.1, 0.2];
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let latents: Vec<f32> = (0..channels * n).map(|_| rnd()).collect();
        let mut rgb = vec![0f32; 3 * n];
        for i in 0..n {
            for k in 0..3 {
                rgb[k * n + i] = true_b[k] + (0..channels).map(|c| true_w[c][k] * latents[c * n + i]).sum::<f32>();
            }
        }
        let map = LatentToRgb::fit(&latents, &rgb, channels).expect("solvable");
        for c in 0..channels {
            for k in 0..3 {
                assert!((map.weights[c][k] - true_w[c][k]).abs() < 0.02, "w[{c}][{k}] = {}", map.weights[c][k]);
            }
        }
        for k in 0..3 {
            assert!((map.bias[k] - true_b[k]).abs() < 0.02);
        }
    }

    #[test]
    fn too_few_samples_is_none() {
        assert!(LatentToRgb::fit(&[0.0; 8], &[0.0; 6], 4).is_none());
    }

    #[test]
    fn preview_maps_bias_to_mid_grey() {
        let map = LatentToRgb { weights: vec![[0.0; 3]; 2], bias: [0.0, 1.0, -1.0] };
        let clip = map.preview(&[0.0; 2 * 2 * 2 * 3], 2, 2, 3);
        assert_eq!(clip.frames.len(), 2);
        assert_eq!(&clip.frames[0][..3], &[128, 255, 0]);
    }

    #[test]
    fn pools_blocks() {
        let rgb: Vec<f32> = (0..3 * 4 * 4).map(|i| (i % 16) as f32).collect();
        let pooled = pool_rgb(&rgb, 4, 4, 2);
        assert_eq!(pooled.len(), 12);
        assert_eq!(pooled[0], (0.0 + 1.0 + 4.0 + 5.0) / 4.0);
    }
}
