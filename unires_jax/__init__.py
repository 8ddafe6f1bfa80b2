"""unires-jax: universal image restoration with latent diffusion models in JAX/Flax."""

__version__ = "0.1.0"
