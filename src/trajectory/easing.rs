use serde::{Deserialize, Serialize};

/// How a timed segment moves from its start keyframe to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Easing {
    /// Constant speed along the segment.
    #[default]
    Linear,
    /// Smoothstep: starts and ends at rest.
    Smooth,
    /// Accelerates from rest.
    EaseIn,
    /// Decelerates to rest.
    EaseOut,
}

impl Easing {
    pub const ALL: [Easing; 4] = [Easing::Linear, Easing::Smooth, Easing::EaseIn, Easing::EaseOut];

    /// Maps segment progress `u` in [0, 1] to eased progress in [0, 1].
    pub fn apply(self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match self {
            Easing::Linear => u,
            Easing::Smooth => u * u * (3.0 - 2.0 * u),
            Easing::EaseIn => u * u,
            Easing::EaseOut => 1.0 - (1.0 - u) * (1.0 - u),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Easing::Linear => "linear",
            Easing::Smooth => "smooth",
            Easing::EaseIn => "ease in",
            Easing::EaseOut => "ease out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_easing_fixes_the_ends_and_is_monotonic() {
        for e in Easing::ALL {
            assert_eq!(e.apply(0.0), 0.0, "{e:?}");
            assert_eq!(e.apply(1.0), 1.0, "{e:?}");
            let mut last = 0.0;
            for i in 1..=100 {
                let v = e.apply(i as f64 / 100.0);
                assert!(v >= last, "{e:?} not monotonic at {i}");
                last = v;
            }
        }
        assert_eq!(Easing::Smooth.apply(0.5), 0.5);
        assert!(Easing::EaseIn.apply(0.5) < 0.5 && Easing::EaseOut.apply(0.5) > 0.5);
    }
}
