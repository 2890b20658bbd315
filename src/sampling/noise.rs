//! The injectable noise source: every random tensor a sampler or pipeline draws goes through a
//! [`NoiseSource`], so a run is reproducible from a seed ([`SeededNoise`]) or replays recorded
//! reference noise ([`ReplayNoise`]), and a run's draws can be kept ([`RecordingNoise`]).

use std::collections::VecDeque;

/// Why a draw could not be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoiseError {
    #[error("the noise recording ran out: draw #{index} (shape {shape:?}) was requested but only {available} tensors were recorded")]
    Exhausted { index: usize, shape: Vec<usize>, available: usize },
    #[error("recorded noise '{name}' (draw #{index}) has shape {recorded:?} but shape {requested:?} was requested")]
    Shape { index: usize, name: String, recorded: Vec<usize>, requested: Vec<usize> },
}

/// A source of standard-normal tensors (row-major f32, `shape.iter().product()` values).
pub trait NoiseSource {
    fn randn(&mut self, shape: &[usize]) -> Result<Vec<f32>, NoiseError>;
}

/// Deterministic N(0,1) noise from a seed: xoshiro256** (seeded through SplitMix64, as its authors
/// recommend) feeding the Box–Muller transform. Does not reproduce torch's generator; fixtures are
/// replayed with [`ReplayNoise`] instead.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    state: [u64; 4],
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededNoise { state: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1]: the top 53 bits, shifted off zero so `ln` stays finite.
    fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl NoiseSource for SeededNoise {
    fn randn(&mut self, shape: &[usize]) -> Result<Vec<f32>, NoiseError> {
        let len: usize = shape.iter().product();
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            // Box–Muller: two uniforms -> two independent normals.
            let radius = (-2.0 * self.uniform_open0().ln()).sqrt();
            let angle = std::f64::consts::TAU * self.uniform_open0();
            out.push((radius * angle.cos()) as f32);
            out.push((radius * angle.sin()) as f32);
        }
        out.truncate(len);
        Ok(out)
    }
}

/// One recorded draw.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedNoise {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Serves recorded tensors in order; a draw past the end or of another shape is an error.
#[derive(Debug, Clone, Default)]
pub struct ReplayNoise {
    queue: VecDeque<RecordedNoise>,
    served: usize,
}

impl ReplayNoise {
    pub fn new(recording: impl IntoIterator<Item = RecordedNoise>) -> Self {
        ReplayNoise { queue: recording.into_iter().collect(), served: 0 }
    }

    /// Reads the named f32 tensors of a safetensors file (e.g. a fixture's `noise_000`, ...) in the given order.
    pub fn from_tensor_file(
        file: &crate::tensor_file::TensorFile,
        names: &[impl AsRef<str>],
    ) -> Result<Self, crate::tensor_file::TensorFileError> {
        let recording = names
            .iter()
            .map(|name| {
                let t = file.f32(name.as_ref())?;
                Ok(RecordedNoise { name: name.as_ref().to_string(), shape: t.shape, data: t.data })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(recording))
    }

    /// How many draws have been served.
    pub fn served(&self) -> usize {
        self.served
    }

    /// How many recorded draws are still unused.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for ReplayNoise {
    fn randn(&mut self, shape: &[usize]) -> Result<Vec<f32>, NoiseError> {
        let index = self.served;
        let Some(next) = self.queue.front() else {
            return Err(NoiseError::Exhausted { index, shape: shape.to_vec(), available: index });
        };
        if next.shape != shape {
            return Err(NoiseError::Shape {
                index,
                name: next.name.clone(),
                recorded: next.shape.clone(),
                requested: shape.to_vec(),
            });
        }
        let next = self.queue.pop_front().expect("checked above");
        self.served += 1;
        Ok(next.data)
    }
}

/// Passes draws through from another source and keeps a copy of each (`noise_000`, `noise_001`, ...),
/// so a run can be saved and replayed later.
#[derive(Debug, Clone)]
pub struct RecordingNoise<S> {
    inner: S,
    pub recording: Vec<RecordedNoise>,
}

impl<S: NoiseSource> RecordingNoise<S> {
    pub fn new(inner: S) -> Self {
        RecordingNoise { inner, recording: Vec::new() }
    }

    /// The recorded draws, ready for [`ReplayNoise::new`].
    pub fn into_recording(self) -> Vec<RecordedNoise> {
        self.recording
    }
}

impl<S: NoiseSource> NoiseSource for RecordingNoise<S> {
    fn randn(&mut self, shape: &[usize]) -> Result<Vec<f32>, NoiseError> {
        let data = self.inner.randn(shape)?;
        let name = format!("noise_{:03}", self.recording.len());
        self.recording.push(RecordedNoise { name, shape: shape.to_vec(), data: data.clone() });
        Ok(data)
    }
}
