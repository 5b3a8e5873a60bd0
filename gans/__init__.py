"""gans: MSG-GAN, CoGAN, SCoGAN and BEGAN in JAX/Flax, built for accelerator throughput."""
