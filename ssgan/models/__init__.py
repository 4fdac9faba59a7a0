"""The maths: networks, losses, the GAN training step and weight averaging. No I/O."""
