"""Image-quality, perceptual and generative losses.

Images are channels-last ``(N, H, W, C)``. ``quality`` holds SSIM, MS-SSIM,
PSNR and total variation; ``perceptual`` the Gram matrix, style and
perceptual (feature) losses; ``generative`` the GAN, VAE and diffusion
objectives. ``vgg`` (imported on first use, it needs Flax) holds a VGG-16
feature extractor whose weights the user supplies.
"""

from jaxloss.image.generative import diffusion_loss as diffusion_loss
from jaxloss.image.generative import gan_discriminator_loss as gan_discriminator_loss
from jaxloss.image.generative import gan_generator_loss as gan_generator_loss
from jaxloss.image.generative import gaussian_kl_loss as gaussian_kl_loss
from jaxloss.image.generative import gradient_penalty as gradient_penalty
from jaxloss.image.generative import r1_penalty as r1_penalty
from jaxloss.image.perceptual import gram_matrix as gram_matrix
from jaxloss.image.perceptual import perceptual_loss as perceptual_loss
from jaxloss.image.perceptual import style_loss as style_loss
from jaxloss.image.quality import ms_ssim_loss as ms_ssim_loss
from jaxloss.image.quality import psnr_loss as psnr_loss
from jaxloss.image.quality import ssim_loss as ssim_loss
from jaxloss.image.quality import total_variation_loss as total_variation_loss

__all__ = [
    "diffusion_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gaussian_kl_loss",
    "gradient_penalty",
    "gram_matrix",
    "ms_ssim_loss",
    "perceptual_loss",
    "psnr_loss",
    "r1_penalty",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
]
