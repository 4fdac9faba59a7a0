"""ssgan: semi-supervised GANs on house-number digits (Salimans et al. 2016).

Importing the package imports nothing heavy: the commands that run TensorFlow start it
with :func:`ssgan.runtime.start_tensorflow` (the allocator setting, a quiet import,
``SSGAN_TF_VERBOSE=1`` to see TensorFlow's start-up lines).
"""

__version__ = "0.1.0"
