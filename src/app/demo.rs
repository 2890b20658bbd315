//! The built-in demo: a picture drawn by code and three coloured tracks on its objects, so the
//! studio is useful before any project or model exists.

use crate::flow::preview::RgbaFrame;
use crate::trajectory::presets::Preset;
use crate::trajectory::{Easing, Keyframe, PathShape, Scene, Track, CANVAS_SIZE};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 480;
const HORIZON: f32 = 300.0;

/// Output pixel -> canvas units.
fn canvas(px: f64, py: f64) -> (f64, f64) {
    (px * CANVAS_SIZE / WIDTH as f64, py * CANVAS_SIZE / HEIGHT as f64)
}

fn key(px: f64, py: f64) -> Keyframe {
    let (x, y) = canvas(px, py);
    Keyframe::at(x.round(), y.round())
}

/// The demo scene: a ball bouncing along the beach, a boat drifting after a pause, a kite
/// looping in the sky.
pub fn demo_scene() -> Scene {
    let mut ball = Track::new(
        "ball",
        [230, 57, 70],
        vec![
            key(150.0, 380.0),
            key(230.0, 330.0),
            key(300.0, 400.0),
            key(380.0, 350.0),
            key(450.0, 410.0),
            key(520.0, 390.0),
        ],
    );
    ball.shape = PathShape::Spline;
    let mut start = key(400.0, 292.0);
    start.hold = 8;
    start.easing = Easing::Smooth;
    let boat = Track::new("boat", [42, 157, 143], vec![start, key(590.0, 292.0)]);
    let (kx, ky) = canvas(230.0, 120.0);
    let kite = Preset::Infinity.track("kite", [244, 162, 97], [kx.round(), ky.round()], 30.0, 49);
    Scene { tracks: vec![ball, boat, kite], ..Scene::default() }
}

/// The demo picture (720x480): dusk sky, sun, sea, beach, and the three objects.
pub fn demo_image() -> RgbaFrame {
    let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            pixels.extend_from_slice(&demo_pixel(x as f32 + 0.5, y as f32 + 0.5));
        }
    }
    RgbaFrame { width: WIDTH, height: HEIGHT, pixels }
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Coverage of a disc edge, anti-aliased over one pixel.
fn disc(x: f32, y: f32, cx: f32, cy: f32, r: f32) -> f32 {
    (r - ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() + 0.5).clamp(0.0, 1.0)
}

fn demo_pixel(x: f32, y: f32) -> [u8; 4] {
    let beach_line = 340.0 + 12.0 * (x / 90.0).sin();
    let mut c = if y < HORIZON {
        mix([32.0, 42.0, 96.0], [250.0, 170.0, 120.0], (y / HORIZON).powf(1.4))
    } else if y < beach_line {
        let wave = 0.5 + 0.5 * ((x / 23.0) + (y - HORIZON) * 0.35).sin();
        mix([28.0, 90.0, 120.0], [40.0, 120.0, 150.0], wave * (y - HORIZON) / 40.0)
    } else {
        mix([225.0, 196.0, 140.0], [200.0, 165.0, 110.0], (y - beach_line) / 140.0)
    };
    // Sun with a glow.
    let sun_d = ((x - 560.0).powi(2) + (y - 150.0).powi(2)).sqrt();
    if y < HORIZON {
        c = mix(c, [255.0, 220.0, 150.0], (1.0 - sun_d / 160.0).max(0.0) * 0.5);
        c = mix(c, [255.0, 236.0, 170.0], disc(x, y, 560.0, 150.0, 42.0));
    }
    // Boat: hull and sail.
    let hull = y > 280.0 && y < 296.0 && (x - 400.0).abs() < 34.0 - (y - 280.0) * 0.8;
    if hull {
        c = [90.0, 52.0, 40.0];
    }
    let sail = y > 222.0 && y <= 280.0 && x > 398.0 && x < 398.0 + (y - 222.0) * 0.55;
    if sail {
        c = [245.0, 245.0, 235.0];
    }
    // Kite: a diamond with a tail.
    if (x - 230.0).abs() / 14.0 + (y - 120.0).abs() / 20.0 < 1.0 {
        c = if x < 230.0 { [240.0, 200.0, 60.0] } else { [230.0, 120.0, 40.0] };
    }
    let tail_y = 140.0 + (x - 230.0) * 0.0;
    if y > tail_y && y < 190.0 && (x - (230.0 + 6.0 * ((y - 140.0) / 9.0).sin())).abs() < 1.2 {
        c = [60.0, 40.0, 40.0];
    }
    // Ball with a shadow and a highlight.
    let shadow = ((x - 152.0) / 26.0).powi(2) + ((y - 402.0) / 6.0).powi(2);
    if shadow < 1.0 {
        c = mix(c, [120.0, 100.0, 70.0], 0.6);
    }
    let ball = disc(x, y, 150.0, 380.0, 20.0);
    let ball_colour = if (x - 150.0) * 0.7 + (y - 380.0) > 0.0 { [210.0, 40.0, 50.0] } else { [240.0, 240.0, 240.0] };
    c = mix(c, ball_colour, ball);
    c = mix(c, [255.0, 255.0, 255.0], disc(x, y, 143.0, 372.0, 4.0) * 0.7);
    [c[0].round() as u8, c[1].round() as u8, c[2].round() as u8, 255]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_a_valid_three_track_scene_with_an_output_sized_image() {
        let scene = demo_scene();
        assert_eq!(scene.tracks.len(), 3);
        let points = scene.sample_points().unwrap();
        assert!(points.iter().all(|p| p.len() == 49 && p.iter().any(|q| q != &p[0])), "every track moves");
        let colours: std::collections::HashSet<_> = scene.tracks.iter().map(|t| t.colour).collect();
        assert_eq!(colours.len(), 3);
        let img = demo_image();
        assert_eq!((img.width, img.height, img.pixels.len()), (720, 480, 720 * 480 * 4));
    }
}
