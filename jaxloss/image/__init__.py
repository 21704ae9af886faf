"""Image-quality, perceptual and generative losses.

Images are channels-last ``(N, H, W, C)``; an image with more channels than
its width is taken for a channels-first (NCHW) batch and rejected with a hint.
``ssim`` holds SSIM and MS-SSIM; ``quality`` PSNR and total variation;
``perceptual`` the Gram matrix, style and perceptual (feature) losses; ``gan``
the GAN losses and gradient penalties; ``generative`` the VAE and diffusion
objectives. ``vgg`` (imported on first use, it needs Flax) holds a VGG-16
feature extractor whose weights the user supplies. ``lpips`` holds the LPIPS
loss; its networks (``lpips_net``, AlexNet or VGG-16 trunks with the linear
heads, weights supplied by the user) also need Flax and load on first use.
"""

from jaxloss.image import gan, generative, lpips, perceptual, quality, ssim  # noqa: F401
from jaxloss.image.gan import gan_discriminator_loss as gan_discriminator_loss
from jaxloss.image.gan import gan_generator_loss as gan_generator_loss
from jaxloss.image.gan import gradient_penalty as gradient_penalty
from jaxloss.image.gan import r1_penalty as r1_penalty
from jaxloss.image.generative import diffusion_loss as diffusion_loss
from jaxloss.image.generative import gaussian_kl_loss as gaussian_kl_loss
from jaxloss.image.lpips import lpips_loss as lpips_loss
from jaxloss.image.perceptual import gram_matrix as gram_matrix
from jaxloss.image.perceptual import perceptual_loss as perceptual_loss
from jaxloss.image.perceptual import style_loss as style_loss
from jaxloss.image.quality import psnr_loss as psnr_loss
from jaxloss.image.quality import total_variation_loss as total_variation_loss
from jaxloss.image.ssim import ms_ssim_loss as ms_ssim_loss
from jaxloss.image.ssim import ssim_loss as ssim_loss

__all__ = [
    "diffusion_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gaussian_kl_loss",
    "gradient_penalty",
    "gram_matrix",
    "lpips_loss",
    "ms_ssim_loss",
    "perceptual_loss",
    "psnr_loss",
    "r1_penalty",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
]


