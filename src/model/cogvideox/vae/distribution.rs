//! `DiagonalGaussianDistribution` of the encoder's moments: mean and log-variance (clamped to
//! [-30, 20]); sampling takes its noise from the caller so runs can replay recorded noise.

use burn::tensor::Tensor;

#[derive(Debug, Clone)]
pub struct LatentDist {
    /// `[b, latent, f, h, w]`
    pub mean: Tensor<5>,
    /// `[b, latent, f, h, w]`, clamped to [-30, 20].
    pub logvar: Tensor<5>,
}

impl LatentDist {
    /// Splits `[b, 2·latent, f, h, w]` moments into mean (first half) and log-variance.
    pub fn from_moments(moments: Tensor<5>) -> Self {
        let c = moments.dims()[1] / 2;
        let mean = moments.clone().narrow(1, 0, c);
        let logvar = moments.narrow(1, c, c).clamp(-30.0, 20.0);
        LatentDist { mean, logvar }
    }

    /// `exp(0.5 · logvar)`
    pub fn std(&self) -> Tensor<5> {
        self.logvar.clone().mul_scalar(0.5).exp()
    }

    /// `mean + std · noise`; `noise` has the mean's shape (standard normal for a real sample).
    pub fn sample(&self, noise: Tensor<5>) -> Tensor<5> {
        self.mean.clone().add(self.std().mul(noise))
    }

    /// The distribution's mode (= mean).
    pub fn mode(&self) -> Tensor<5> {
        self.mean.clone()
    }
}
