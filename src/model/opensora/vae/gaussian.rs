//! `DiagonalGaussianDistribution` (diffusers' and OpenSora's are the same for sampling): the
//! moments split into mean and log-variance along channels, log-variance clamped to [−30, 20],
//! and a sample `mean + exp(½·logvar)·noise` with externally drawn standard-normal noise.

use burn::tensor::Tensor;

/// A posterior over latents `[batch, channels, ...]`.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian<const D: usize> {
    pub mean: Tensor<D>,
    /// Clamped to [−30, 20].
    pub logvar: Tensor<D>,
}

impl<const D: usize> DiagonalGaussian<D> {
    /// `moments` `[batch, 2·channels, ...]`: the first half of the channels is the mean.
    pub fn from_moments(moments: Tensor<D>) -> Self {
        let half = moments.dims()[1] / 2;
        let mean = moments.clone().narrow(1, 0, half);
        let logvar = moments.narrow(1, half, half).clamp(-30.0, 20.0);
        DiagonalGaussian { mean, logvar }
    }

    /// `mean + exp(½·logvar)·noise`, `noise` shaped like the mean.
    pub fn sample(&self, noise: Tensor<D>) -> Tensor<D> {
        self.mean.clone() + self.logvar.clone().mul_scalar(0.5).exp() * noise
    }
}
