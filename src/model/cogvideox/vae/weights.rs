//! Where module builders take their tensors from: a checkpoint (`TensorLoader`, every key checked)
//! or random values (memory/speed measurements at real shapes without downloading weights).

use burn::tensor::{Tensor, TensorData};

use crate::model::device::ComputeDevice;
use crate::model::load::TensorLoader;

pub trait WeightSource {
    /// Tensor `key` with the expected shape.
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D>;
}

impl WeightSource for TensorLoader<'_> {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        TensorLoader::tensor(self, key, shape)
    }
}

/// Uniform `±1/√fan_in` conv weights (PyTorch's default init scale), norm weights 1, biases small.
pub struct RandomWeights {
    device: ComputeDevice,
    /// xorshift64* state: our own generator (this crate is optimised; the RNG of the
    /// unoptimised dependencies takes minutes for the real model's 200M+ values).
    state: u64,
    /// How many values were made (for reporting the model size).
    pub parameters: usize,
}

impl RandomWeights {
    pub fn new(device: &ComputeDevice) -> Self {
        RandomWeights { device: device.clone(), state: 0x9E37_79B9_7F4A_7C15, parameters: 0 }
    }
}

impl RandomWeights {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl WeightSource for RandomWeights {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Tensor<D> {
        self.parameters += shape.iter().product::<usize>();
        let device = self.device.device();
        let is_norm_weight = D == 1 && key.ends_with(".weight");
        if is_norm_weight {
            return Tensor::ones(shape, (device, self.device.dtype()));
        }
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let bound = if D == 1 { 0.02 } else { 1.0 / (fan_in as f64).sqrt() };
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| ((2.0 * self.unit() - 1.0) * bound) as f32).collect();
        self.device.float_tensor(TensorData::new(values, shape))
    }
}
