//! Pictures the project draws itself (nothing copied from elsewhere): the window icon and the
//! first-frame images for image-to-video shipped in `assets/`. The demo background is
//! [`super::demo_image`]. A test keeps the files in `assets/` equal to what this code draws.

use crate::flow::preview::RgbaFrame;

/// Side of the square window icon.
pub const ICON_SIZE: u32 = 128;
/// First frames are drawn at Tora's output size.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 480;

type Rgb = [f32; 3];

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Anti-aliased coverage of "inside" where `d` is a signed distance (negative inside), in pixels.
fn cover(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

fn draw(width: u32, height: u32, pixel: impl Fn(f32, f32) -> [f32; 4]) -> RgbaFrame {
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let c = pixel(x as f32 + 0.5, y as f32 + 0.5);
            pixels.extend(c.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    RgbaFrame { width, height, pixels }
}

fn opaque(c: Rgb) -> [f32; 4] {
    [c[0], c[1], c[2], 255.0]
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (ab, ap) = ([b[0] - a[0], b[1] - a[1]], [p[0] - a[0], p[1] - a[1]]);
    let t = ((ap[0] * ab[0] + ap[1] * ab[1]) / (ab[0] * ab[0] + ab[1] * ab[1]).max(1e-6)).clamp(0.0, 1.0);
    ((ap[0] - t * ab[0]).powi(2) + (ap[1] - t * ab[1]).powi(2)).sqrt()
}

/// The window icon: a motion path (a curve of dots in the track colours ending in an arrow) on a
/// rounded dusk-blue tile.
pub fn app_icon() -> RgbaFrame {
    let s = ICON_SIZE as f32;
    let path: Vec<[f32; 2]> = (0..=32)
        .map(|i| {
            let t = i as f32 / 32.0;
            [s * (0.18 + 0.64 * t), s * (0.70 - 0.40 * (t * std::f32::consts::PI).sin() * (1.0 - 0.3 * t))]
        })
        .collect();
    let dots = [(0.0, [230.0, 57.0, 70.0]), (0.34, [244.0, 162.0, 97.0]), (0.67, [42.0, 157.0, 143.0])];
    draw(ICON_SIZE, ICON_SIZE, |x, y| {
        // Rounded square tile.
        let (r, half) = (s * 0.2, s / 2.0 - 2.0);
        let q = [(x - s / 2.0).abs() - (half - r), (y - s / 2.0).abs() - (half - r)];
        let outside = [q[0].max(0.0), q[1].max(0.0)];
        let tile = (outside[0].powi(2) + outside[1].powi(2)).sqrt() + q[0].max(q[1]).min(0.0) - r;
        let alpha = cover(tile);
        if alpha <= 0.0 {
            return [0.0; 4];
        }
        let mut c = mix([40.0, 50.0, 110.0], [245.0, 160.0, 110.0], (y / s).powf(1.6));
        let line = path.windows(2).map(|w| segment_distance([x, y], w[0], w[1])).fold(f32::MAX, f32::min);
        c = mix(c, [250.0, 245.0, 235.0], cover(line - s * 0.025));
        for (t, colour) in dots {
            let p = path[(t * 32.0) as usize];
            c = mix(c, colour, cover(((x - p[0]).powi(2) + (y - p[1]).powi(2)).sqrt() - s * 0.075));
        }
        // Arrowhead at the end, pointing along the last segment.
        let (a, b) = (path[30], path[32]);
        let dir = [b[0] - a[0], b[1] - a[1]];
        let len = (dir[0] * dir[0] + dir[1] * dir[1]).sqrt().max(1e-6);
        let (ux, uy) = (dir[0] / len, dir[1] / len);
        let tip = [b[0] + ux * s * 0.06, b[1] + uy * s * 0.06];
        let rel = [x - tip[0], y - tip[1]];
        let along = -(rel[0] * ux + rel[1] * uy);
        let across = (rel[0] * -uy + rel[1] * ux).abs();
        let arrow = (along >= 0.0 && along <= s * 0.16 && across <= along * 0.6) as u8 as f32;
        c = mix(c, [250.0, 245.0, 235.0], arrow);
        [c[0], c[1], c[2], 255.0 * alpha]
    })
}

/// The window icon as eframe takes it.
pub fn icon_data() -> eframe::egui::IconData {
    let icon = app_icon();
    eframe::egui::IconData { rgba: icon.pixels, width: icon.width, height: icon.height }
}

/// First-frame images for image-to-video, by file stem (`assets/first_frames/<name>.png`).
pub const FIRST_FRAMES: [&str; 3] = ["meadow", "mountain_lake", "desert_road"];

/// One of [`FIRST_FRAMES`], drawn at 720x480; `None` for an unknown name.
pub fn first_frame(name: &str) -> Option<RgbaFrame> {
    let pixel: fn(f32, f32) -> Rgb = match name {
        "meadow" => meadow,
        "mountain_lake" => mountain_lake,
        "desert_road" => desert_road,
        _ => return None,
    };
    Some(draw(WIDTH, HEIGHT, |x, y| opaque(pixel(x, y))))
}

/// Rolling green hills with flowers, a tree and a white cloud.
fn meadow(x: f32, y: f32) -> Rgb {
    let mut c = mix([110.0, 170.0, 235.0], [205.0, 230.0, 250.0], y / 300.0);
    for (cx, cy, r) in [(180.0, 90.0, 26.0), (215.0, 80.0, 34.0), (252.0, 92.0, 24.0)] {
        c = mix(c, [252.0, 252.0, 255.0], cover(((x - cx).powi(2) + ((y - cy) * 1.6).powi(2)).sqrt() - r));
    }
    let far = 250.0 + 28.0 * (x / 140.0).sin() + 12.0 * (x / 47.0 + 1.0).sin();
    if y > far {
        c = mix([120.0, 170.0, 90.0], [95.0, 150.0, 75.0], (y - far) / 60.0);
    }
    let near = 330.0 + 40.0 * (x / 210.0 + 2.0).sin();
    if y > near {
        let stripe = 0.5 + 0.5 * (x / 9.0 + y / 5.0).sin();
        c = mix([80.0, 150.0, 60.0], [70.0, 135.0, 52.0], stripe * 0.6 + (y - near) / 300.0);
    }
    // A tree on the near hill.
    let trunk = (x - 520.0).abs() < 7.0 && y > 250.0 && y < 320.0;
    if trunk {
        c = [95.0, 65.0, 40.0];
    }
    for (cx, cy, r) in [(520.0, 230.0, 46.0), (490.0, 250.0, 32.0), (552.0, 252.0, 30.0)] {
        let shade = (y - cy + r) / (2.0 * r);
        c = mix(
            c,
            mix([70.0, 140.0, 60.0], [40.0, 95.0, 40.0], shade),
            cover(((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r),
        );
    }
    // Flowers.
    let fx = (x / 37.0).floor();
    let fy = (y / 29.0).floor();
    let jitter = ((fx * 12.9898 + fy * 78.233).sin() * 43_758.547).fract().abs();
    let (px, py) = ((fx + 0.2 + 0.6 * jitter) * 37.0, (fy + 0.5) * 29.0);
    if y > near + 20.0 && ((x - px).powi(2) + (y - py).powi(2)).sqrt() < 3.0 {
        c = if jitter > 0.5 { [250.0, 220.0, 70.0] } else { [250.0, 250.0, 250.0] };
    }
    c
}

/// Snowy peaks at dawn above a still lake that mirrors them, and a low moon.
fn mountain_lake(x: f32, y: f32) -> Rgb {
    let shore = 300.0;
    let ridge = |x: f32| {
        let peak = |cx: f32, h: f32, w: f32| h * (1.0 - ((x - cx).abs() / w)).max(0.0);
        shore - peak(220.0, 190.0, 230.0).max(peak(470.0, 230.0, 210.0)).max(peak(650.0, 150.0, 170.0))
            + 6.0 * (x / 13.0).sin()
    };
    let scene = |x: f32, y: f32| -> Rgb {
        let mut c = mix([70.0, 80.0, 140.0], [250.0, 190.0, 160.0], (y / shore).powf(1.3));
        c = mix(c, [255.0, 250.0, 235.0], cover(((x - 600.0).powi(2) + (y - 90.0).powi(2)).sqrt() - 22.0));
        let top = ridge(x);
        if y > top {
            let snow = y < top + 40.0 && y < 185.0 + 8.0 * (x / 17.0).sin();
            c = if snow {
                [240.0, 240.0, 250.0]
            } else {
                mix([90.0, 90.0, 120.0], [60.0, 70.0, 90.0], (y - top) / 150.0)
            };
        }
        c
    };
    if y < shore {
        return scene(x, y);
    }
    // The lake: the mirrored scene, darkened, rippled.
    let ripple = 2.0 * ((y - shore) / 3.0).sin();
    let mirrored = scene(x + ripple, 2.0 * shore - y);
    mix(mix(mirrored, [30.0, 50.0, 80.0], 0.35), [20.0, 35.0, 60.0], (y - shore) / 400.0)
}

/// A straight road to the horizon across dunes under a hot sky, with a cactus.
fn desert_road(x: f32, y: f32) -> Rgb {
    let horizon = 220.0;
    if y < horizon {
        let mut c = mix([60.0, 130.0, 210.0], [245.0, 215.0, 170.0], (y / horizon).powf(1.5));
        c = mix(c, [255.0, 245.0, 200.0], cover(((x - 150.0).powi(2) + (y - 80.0).powi(2)).sqrt() - 30.0));
        let mesa = (x > 470.0 && x < 610.0 && y > horizon - 45.0 + ((x - 540.0).abs() - 55.0).max(0.0) * 2.0) as u8;
        if mesa == 1 {
            c = [170.0, 95.0, 70.0];
        }
        return c;
    }
    let depth = (y - horizon) / (HEIGHT as f32 - horizon); // 0 at the horizon, 1 at the bottom
    let dune = 0.5 + 0.5 * (x / (30.0 + 90.0 * depth) + depth * 9.0).sin();
    let mut c = mix([235.0, 190.0, 130.0], [215.0, 160.0, 100.0], dune * 0.5 + depth * 0.3);
    // The road: its half width grows with depth towards the viewer.
    let half = 6.0 + 260.0 * depth;
    let dx = x - WIDTH as f32 / 2.0;
    if dx.abs() < half {
        c = [70.0, 70.0, 75.0];
        let dash = ((1.0 / (depth + 0.05)) * 3.0).fract() < 0.5;
        if dx.abs() < 1.0 + 5.0 * depth && dash {
            c = [240.0, 220.0, 120.0];
        }
        if (dx.abs() - half * 0.92).abs() < 0.5 + 3.0 * depth {
            c = [230.0, 230.0, 230.0];
        }
    }
    // A cactus at the road side.
    let trunk = (x - 130.0).abs() < 10.0 && y > 240.0 && y < 380.0;
    let left_arm =
        (x - 105.0).abs() < 7.0 && y > 270.0 && y < 320.0 || (y - 315.0).abs() < 7.0 && x > 100.0 && x < 130.0;
    let right_arm =
        (x - 158.0).abs() < 7.0 && y > 255.0 && y < 300.0 || (y - 295.0).abs() < 7.0 && x > 130.0 && x < 162.0;
    if trunk || left_arm || right_arm {
        c = mix([60.0, 130.0, 70.0], [40.0, 95.0, 50.0], ((x - 130.0) / 20.0).clamp(0.0, 1.0));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_have_their_sizes_and_are_not_flat() {
        let icon = app_icon();
        assert_eq!((icon.width, icon.height), (ICON_SIZE, ICON_SIZE));
        assert_eq!(icon.pixel(0, 0)[3], 0, "the tile's corner is transparent");
        assert_eq!(icon.pixel(ICON_SIZE / 2, ICON_SIZE / 2)[3], 255);
        for name in FIRST_FRAMES {
            let img = first_frame(name).unwrap();
            assert_eq!((img.width, img.height), (720, 480), "{name}");
            let distinct: std::collections::HashSet<[u8; 4]> =
                img.pixels.chunks(4).map(|p| [p[0], p[1], p[2], p[3]]).collect();
            assert!(distinct.len() > 200, "{name}: only {} colours", distinct.len());
        }
        assert!(first_frame("nope").is_none());
    }
}
