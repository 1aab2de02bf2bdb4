"""live: image-driven video editing with latent prompts (LIVE) on Stable Diffusion v1.x."""

__version__ = "0.1.0"
