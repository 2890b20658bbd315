//! Regions: move a whole object. A lasso outline on the image plus a path (a [`Track`] with all
//! of a track's keyframes and timing) becomes N tracks — points spread evenly inside the outline
//! that all follow the path's displacement — so the model sees the multi-track input it was
//! trained on (the approach of ATI, Wan-Move and DragAnything).

use serde::{Deserialize, Serialize};

use super::{Keyframe, Track, TrajectoryError, CANVAS_SIZE};

/// Sample points a new region gets.
pub const DEFAULT_REGION_SAMPLES: u32 = 12;
/// Most sample points one region may expand to (each is one track of the motion field).
pub const MAX_REGION_SAMPLES: u32 = 256;

/// An object to move: an outline on the 256x256 canvas and the path it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Name, colour, keyframes and timing of the region's motion; the path's first position is
    /// where the region is grabbed, so every sample point moves by `path(f) - path(0)`.
    #[serde(flatten)]
    pub path: Track,
    /// The lasso: a closed polygon in canvas coordinates (the last vertex joins the first).
    pub outline: Vec<[f64; 2]>,
    /// How many tracks (sample points) the region becomes.
    #[serde(default = "default_samples")]
    pub samples: u32,
}

fn default_samples() -> u32 {
    DEFAULT_REGION_SAMPLES
}

impl Region {
    /// A region whose path starts (and, until edited, stays) at the outline's centroid.
    pub fn new(name: impl Into<String>, colour: [u8; 3], outline: Vec<[f64; 2]>) -> Self {
        let c = centroid(&outline);
        Region { path: Track::new(name, colour, vec![Keyframe::at(c[0], c[1])]), outline, samples: default_samples() }
    }

    pub fn name(&self) -> &str {
        &self.path.name
    }

    /// The outline's checks: a real area, on the image, a sample count in range.
    pub fn validate(&self) -> Result<(), TrajectoryError> {
        let region = self.path.name.clone();
        if self.outline.len() < 3 {
            return Err(TrajectoryError::RegionOutline {
                region,
                reason: format!(
                    "the lasso has {} point(s); draw around the object so it encloses an area",
                    self.outline.len()
                ),
            });
        }
        if let Some(p) = self.outline.iter().find(|p| !on_canvas(**p)) {
            return Err(TrajectoryError::RegionOutsideImage { region, x: p[0], y: p[1] });
        }
        if polygon_area(&self.outline) < MIN_AREA {
            return Err(TrajectoryError::RegionOutline {
                region,
                reason: "the lasso encloses no area (its points lie on a line); draw around the object".into(),
            });
        }
        if !(1..=MAX_REGION_SAMPLES).contains(&self.samples) {
            return Err(TrajectoryError::RegionOutline {
                region,
                reason: format!("{} sample points; use 1 to {MAX_REGION_SAMPLES}", self.samples),
            });
        }
        if self.path.points.is_empty() {
            return Err(TrajectoryError::NoPoints { track: region });
        }
        Ok(())
    }

    /// The sample points inside the outline, spread evenly (deterministic: a grid fine enough to
    /// hold several candidates per point, thinned by farthest-point selection from the centre).
    pub fn sample_points(&self) -> Vec<[f64; 2]> {
        spread_inside(&self.outline, self.samples as usize)
    }

    /// The region as plain tracks, one per sample point, each holding one timed keyframe per
    /// frame: exactly the positions `sample + path(f) - path(0)`.
    pub fn expand(&self, frames: u32) -> Result<Vec<Track>, TrajectoryError> {
        self.validate()?;
        let path = self.path.canvas_positions(frames)?;
        let origin = path[0];
        Ok(self
            .sample_points()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let keys = path
                    .iter()
                    .enumerate()
                    .map(|(f, p)| Keyframe::timed(s[0] + (p[0] - origin[0]), s[1] + (p[1] - origin[1]), f as f64))
                    .collect();
                Track::new(format!("{} #{}", self.path.name, i + 1), self.path.colour, keys)
            })
            .collect())
    }

    /// Moves the outline and the path together (canvas units).
    pub fn translate(&mut self, dx: f64, dy: f64) {
        for p in &mut self.outline {
            p[0] += dx;
            p[1] += dy;
        }
        for k in &mut self.path.points {
            k.x += dx;
            k.y += dy;
        }
    }

    /// Whether a canvas point lies inside the outline.
    pub fn contains(&self, p: [f64; 2]) -> bool {
        point_in_polygon(&self.outline, p)
    }
}

/// Smallest outline area (canvas units²) that still counts as an area.
const MIN_AREA: f64 = 1.0;

fn on_canvas(p: [f64; 2]) -> bool {
    p.iter().all(|v| v.is_finite() && (0.0..=CANVAS_SIZE).contains(v))
}

/// Unsigned area by the shoelace formula.
pub fn polygon_area(poly: &[[f64; 2]]) -> f64 {
    let n = poly.len();
    (0..n).map(|i| poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1]).sum::<f64>().abs() / 2.0
}

/// Area centroid (vertex mean for a degenerate polygon).
pub fn centroid(poly: &[[f64; 2]]) -> [f64; 2] {
    let n = poly.len();
    if n == 0 {
        return [CANVAS_SIZE / 2.0; 2];
    }
    let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (p, q) = (poly[i], poly[(i + 1) % n]);
        let cross = p[0] * q[1] - q[0] * p[1];
        a += cross;
        cx += (p[0] + q[0]) * cross;
        cy += (p[1] + q[1]) * cross;
    }
    if a.abs() < 1e-9 {
        let s = poly.iter().fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
        return [s[0] / n as f64, s[1] / n as f64];
    }
    [cx / (3.0 * a), cy / (3.0 * a)]
}

/// Even-odd rule.
pub fn point_in_polygon(poly: &[[f64; 2]], p: [f64; 2]) -> bool {
    let n = poly.len();
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// `count` points inside `poly`, spread evenly.
fn spread_inside(poly: &[[f64; 2]], count: usize) -> Vec<[f64; 2]> {
    if count == 0 || poly.len() < 3 {
        return Vec::new();
    }
    let (lo, hi) = poly.iter().fold(([f64::MAX; 2], [f64::MIN; 2]), |(lo, hi), p| {
        ([lo[0].min(p[0]), lo[1].min(p[1])], [hi[0].max(p[0]), hi[1].max(p[1])])
    });
    // Candidates on a grid of ~4 cells per wanted point; refined until enough fall inside (thin
    // outlines), and the centroid as a last resort so a region never expands to nothing.
    let mut step = (polygon_area(poly) / (4 * count) as f64).sqrt().max(1e-3);
    let mut candidates = Vec::new();
    for _ in 0..12 {
        candidates.clear();
        let mut y = lo[1] + step / 2.0;
        while y < hi[1] {
            let mut x = lo[0] + step / 2.0;
            while x < hi[0] {
                if point_in_polygon(poly, [x, y]) {
                    candidates.push([x, y]);
                }
                x += step;
            }
            y += step;
        }
        if candidates.len() >= 2 * count {
            break;
        }
        step /= 2.0;
    }
    if candidates.is_empty() {
        candidates.push(centroid(poly));
    }
    // Farthest-point selection, starting from the candidate nearest the centroid.
    let d2 = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let c = centroid(poly);
    let first = (0..candidates.len()).min_by(|&i, &j| d2(candidates[i], c).total_cmp(&d2(candidates[j], c)));
    let mut chosen = vec![candidates[first.unwrap_or(0)]];
    let mut nearest: Vec<f64> = candidates.iter().map(|&q| d2(q, chosen[0])).collect();
    while chosen.len() < count.min(candidates.len()) {
        let Some(next) = (0..candidates.len()).max_by(|&i, &j| nearest[i].total_cmp(&nearest[j]).then(j.cmp(&i)))
        else {
            break;
        };
        let p = candidates[next];
        chosen.push(p);
        for (n, &q) in nearest.iter_mut().zip(&candidates) {
            *n = n.min(d2(q, p));
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f64, y: f64, side: f64) -> Vec<[f64; 2]> {
        vec![[x, y], [x + side, y], [x + side, y + side], [x, y + side]]
    }

    #[test]
    fn samples_are_inside_distinct_and_spread() {
        let mut r = Region::new("box", [1, 2, 3], square(40.0, 40.0, 80.0));
        r.samples = 16;
        let pts = r.sample_points();
        assert_eq!(pts.len(), 16);
        assert!(pts.iter().all(|&p| r.contains(p)), "{pts:?}");
        // Evenly spread: no two points closer than a quarter of the ideal spacing (80/4 = 20).
        for (i, a) in pts.iter().enumerate() {
            for b in &pts[i + 1..] {
                let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
                assert!(d > 5.0, "{a:?} and {b:?} are {d} apart");
            }
        }
        // Each quadrant of the square holds some points.
        for (qx, qy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let inside = |p: &&[f64; 2]| ((p[0] - 40.0) / 40.0) as i32 == qx && ((p[1] - 40.0) / 40.0) as i32 == qy;
            assert!(pts.iter().filter(inside).count() >= 2, "quadrant {qx},{qy}: {pts:?}");
        }
        assert_eq!(r.sample_points(), pts, "deterministic");
    }

    #[test]
    fn a_thin_or_concave_outline_still_gets_its_points() {
        let mut r = Region::new("thin", [0; 3], vec![[10.0, 10.0], [200.0, 10.0], [200.0, 12.0], [10.0, 12.0]]);
        r.samples = 30;
        let pts = r.sample_points();
        assert_eq!(pts.len(), 30);
        assert!(pts.iter().all(|&p| r.contains(p)));
        // An L shape: nothing in the cut-out corner.
        let l = vec![[0.0, 0.0], [100.0, 0.0], [100.0, 40.0], [40.0, 40.0], [40.0, 100.0], [0.0, 100.0]];
        let r = Region { samples: 40, ..Region::new("L", [0; 3], l) };
        assert!(r.sample_points().iter().all(|p| !(p[0] > 40.0 && p[1] > 40.0)));
    }

    #[test]
    fn expanded_tracks_all_move_by_the_path() {
        let mut r = Region::new("box", [9, 9, 9], square(20.0, 20.0, 40.0));
        let c = r.path.points[0];
        r.path.points.push(Keyframe::at(c.x + 100.0, c.y + 50.0));
        let tracks = r.expand(9).unwrap();
        assert_eq!(tracks.len(), DEFAULT_REGION_SAMPLES as usize);
        let samples = r.sample_points();
        for (t, s) in tracks.iter().zip(&samples) {
            let pos = t.canvas_positions(9).unwrap();
            assert_eq!(pos[0], *s);
            for (f, p) in pos.iter().enumerate() {
                let d = [p[0] - s[0], p[1] - s[1]];
                let want = [100.0 * f as f64 / 8.0, 50.0 * f as f64 / 8.0];
                assert!((d[0] - want[0]).abs() < 1e-9 && (d[1] - want[1]).abs() < 1e-9, "frame {f}: {d:?}");
            }
            assert_eq!(t.colour, [9, 9, 9]);
        }
    }

    #[test]
    fn bad_outlines_are_named_errors() {
        let few = Region::new("cup", [0; 3], vec![[1.0, 1.0], [5.0, 5.0]]);
        let err = few.validate().unwrap_err().to_string();
        assert!(err.contains("cup") && err.contains("2 point(s)"), "{err}");
        let flat = Region::new("line", [0; 3], vec![[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]);
        assert!(flat.validate().unwrap_err().to_string().contains("no area"));
        let outside = Region::new("far", [0; 3], square(250.0, 10.0, 20.0));
        let err = outside.validate().unwrap_err().to_string();
        assert!(err.contains("far") && err.contains("outside"), "{err}");
        let none = Region { samples: 0, ..Region::new("zero", [0; 3], square(10.0, 10.0, 20.0)) };
        assert!(none.validate().unwrap_err().to_string().contains("0 sample points"));
        assert!(none.expand(5).is_err());
    }
}
