"""Image-quality, perceptual and generative losses.

Images are channels-last ``(N, H, W, C)``. ``quality`` holds SSIM, MS-SSIM,
PSNR and total variation; ``perceptual`` the Gram matrix, style and
perceptual (feature) losses; ``generative`` the GAN, VAE and diffusion
objectives. ``vgg`` (imported on first use, it needs Flax) holds a VGG-16
feature extractor whose weights the user supplies.
"""

from jaxloss.image import generative, perceptual, quality
from jaxloss.image.generative import *  # noqa: F403
from jaxloss.image.perceptual import *  # noqa: F403
from jaxloss.image.quality import *  # noqa: F403

__all__: list[str] = [
    *generative.__all__,
    *perceptual.__all__,
    *quality.__all__,
]
