//! Where module builders take their tensors from: a checkpoint (`TensorLoader`, every key checked)
//! or random values (memory/speed measurements at real shapes without downloading weights).

use burn::tensor::{Distribution, Tensor};

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
    /// How many values were made (for reporting the model size).
    pub parameters: usize,
}

impl RandomWeights {
    pub fn new(device: &ComputeDevice) -> Self {
        RandomWeights { device: device.clone(), parameters: 0 }
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
        Tensor::random(shape, Distribution::Uniform(-bound, bound), (device, self.device.dtype()))
    }
}
