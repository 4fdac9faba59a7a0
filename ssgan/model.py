"""Generator and discriminator networks, built by small ``build_*`` functions.

Two architectures, chosen by ``model.name``:

* ``tutorial`` -- the SVHN semi-supervised GAN of the tutorial the project grew from,
  with its two faults fixed: the seventh convolution reads the sixth's output (the
  original read the fifth), and batch normalisation uses moving statistics at inference
  (the original always used batch statistics, so a prediction depended on the batch).
* ``improved_gan`` -- the SVHN feature-matching model of Salimans et al. 2016's code:
  weight-normalised convolutions with data-dependent initialisation, dropout, NIN layers.

Discriminators map images in [-1, 1] to ``(class_logits, features)``; ``features`` are
the globally pooled activations that feature matching compares.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from omegaconf import DictConfig

IMAGE_SHAPE = (32, 32, 3)


def build_generator(model_cfg: DictConfig) -> keras.Model:
    """z [B, z_size] -> images [B, 32, 32, 3] in [-1, 1]."""
    if model_cfg.name == "improved_gan":
        return _improved_generator(model_cfg)
    return _tutorial_generator(model_cfg)


def build_discriminator(model_cfg: DictConfig) -> keras.Model:
    """images [B, 32, 32, 3] in [-1, 1] -> (logits [B, num_classes], features [B, F])."""
    if model_cfg.name == "improved_gan":
        return _improved_discriminator(model_cfg)
    return _tutorial_discriminator(model_cfg)


# -- tutorial ---------------------------------------------------------------------------


def _tutorial_generator(cfg: DictConfig) -> keras.Model:
    width = int(cfg.g_size_mult)
    z = keras.Input((int(cfg.z_size),), name="z")
    h = keras.layers.Dense(4 * 4 * width * 4, name="project")(z)
    h = keras.layers.Reshape((4, 4, width * 4))(h)
    h = keras.layers.BatchNormalization(name="project_bn")(h)
    h = keras.layers.LeakyReLU(negative_slope=float(cfg.leaky_alpha))(h)
    for index, channels in enumerate((width * 2, width), start=1):
        h = keras.layers.Conv2DTranspose(
            channels, 5, strides=2, padding="same", name=f"deconv{index}"
        )(h)
        h = keras.layers.BatchNormalization(name=f"deconv{index}_bn")(h)
        h = keras.layers.LeakyReLU(negative_slope=float(cfg.leaky_alpha))(h)
    h = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="deconv3")(h)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(z, images, name="generator")


# (filters as multiples of d_size_mult, stride, batch norm, dropout after)
_TUTORIAL_CONVS = (
    (1, 2, False, True),
    (1, 2, True, False),
    (1, 2, True, True),
    (2, 1, True, False),
    (2, 1, True, False),
    (2, 2, True, True),
    (2, 1, False, False),
)


def _tutorial_discriminator(cfg: DictConfig) -> keras.Model:
    width, alpha, drop = int(cfg.d_size_mult), float(cfg.leaky_alpha), float(cfg.drop_rate)
    images = keras.Input(IMAGE_SHAPE, name="images")
    h = keras.layers.Dropout(drop / 2.5, name="input_dropout")(images)
    for index, (mult, stride, batch_norm, dropout) in enumerate(_TUTORIAL_CONVS, start=1):
        # Each convolution reads the previous one's output. The seventh works on the
        # sixth's 2x2 map, so it pads ("same") where the original's "valid" could not.
        h = keras.layers.Conv2D(
            width * mult, 3, strides=stride, padding="same", name=f"conv{index}"
        )(h)
        if batch_norm:
            h = keras.layers.BatchNormalization(name=f"conv{index}_bn")(h)
        h = keras.layers.LeakyReLU(negative_slope=alpha, name=f"conv{index}_act")(h)
        if dropout:
            h = keras.layers.Dropout(drop, name=f"conv{index}_dropout")(h)
    features = keras.layers.GlobalAveragePooling2D(name="features")(h)
    logits = keras.layers.Dense(int(cfg.num_classes), dtype="float32", name="class_logits")(
        features
    )
    features = keras.layers.Activation("linear", dtype="float32", name="features_out")(features)
    return keras.Model(images, [logits, features], name="discriminator")


# -- improved_gan (Salimans et al. 2016, SVHN feature matching) ---------------------------


class WeightNormDense(keras.layers.Layer):
    """Dense layer with weight normalisation (Salimans & Kingma 2016): w = g * v / ||v||.

    ``initialize`` mode (data-dependent init): on the first batch, g and b are set so the
    pre-activations have zero mean and ``init_scale`` standard deviation per unit.
    """

    def __init__(self, units: int, init_scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units, self.init_scale = units, init_scale
        self.pending_init = False

    def build(self, input_shape) -> None:
        fan_in = int(input_shape[-1])
        init = keras.initializers.RandomNormal(stddev=0.05)
        self.v = self.add_weight(name="v", shape=(fan_in, self.units), initializer=init)
        self.g = self.add_weight(name="g", shape=(self.units,), initializer="ones")
        self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")

    def _direction(self) -> tf.Tensor:
        return self.v / tf.sqrt(tf.reduce_sum(tf.square(self.v), axis=0, keepdims=True) + 1e-12)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        pre = tf.matmul(inputs, tf.cast(self._direction(), inputs.dtype))
        if self.pending_init:
            mean, variance = tf.nn.moments(tf.cast(pre, tf.float32), axes=[0])
            scale = self.init_scale / tf.sqrt(variance + 1e-6)
            self.g.assign(scale)
            self.b.assign(-mean * scale)
            self.pending_init = False
        return pre * tf.cast(self.g, pre.dtype) + tf.cast(self.b, pre.dtype)


class WeightNormConv2D(keras.layers.Layer):
    """2-D convolution with weight normalisation and data-dependent initialisation."""

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        padding: str = "same",
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.padding, self.init_scale = padding.upper(), init_scale
        self.pending_init = False

    def build(self, input_shape) -> None:
        shape = (self.kernel_size, self.kernel_size, int(input_shape[-1]), self.filters)
        init = keras.initializers.RandomNormal(stddev=0.05)
        self.v = self.add_weight(name="v", shape=shape, initializer=init)
        self.g = self.add_weight(name="g", shape=(self.filters,), initializer="ones")
        self.b = self.add_weight(name="b", shape=(self.filters,), initializer="zeros")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        norm = tf.sqrt(tf.reduce_sum(tf.square(self.v), axis=[0, 1, 2], keepdims=True) + 1e-12)
        kernel = tf.cast(self.v / norm, inputs.dtype)
        pre = tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding)
        if self.pending_init:
            mean, variance = tf.nn.moments(tf.cast(pre, tf.float32), axes=[0, 1, 2])
            scale = self.init_scale / tf.sqrt(variance + 1e-6)
            self.g.assign(scale)
            self.b.assign(-mean * scale)
            self.pending_init = False
        return pre * tf.cast(self.g, pre.dtype) + tf.cast(self.b, pre.dtype)


def data_dependent_init(model: keras.Model, batch: tf.Tensor) -> None:
    """Initialise every weight-normalised layer from one batch (eager, layer by layer,
    so each layer's statistics are taken on already-initialised inputs)."""
    layers = [layer for layer in _all_layers(model) if hasattr(layer, "pending_init")]
    if not layers:
        return
    for layer in layers:
        layer.pending_init = True
    model(batch, training=True)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.extend(_all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def _improved_discriminator(cfg: DictConfig) -> keras.Model:
    scale = int(cfg.d_size_mult) / 64.0
    narrow, wide = max(1, round(64 * scale)), max(1, round(128 * scale))
    alpha, drop = float(cfg.leaky_alpha), float(cfg.drop_rate)
    images = keras.Input(IMAGE_SHAPE, name="images")
    h = keras.layers.Dropout(0.2, name="input_dropout")(images)
    h = keras.layers.GaussianNoise(0.05, name="input_noise")(h)
    plan = [
        (narrow, 3, 1, "same"),
        (narrow, 3, 1, "same"),
        (narrow, 3, 2, "same"),
        "drop",
        (wide, 3, 1, "same"),
        (wide, 3, 1, "same"),
        (wide, 3, 2, "same"),
        "drop",
        (wide, 3, 1, "valid"),
        (wide, 1, 1, "same"),
        (wide, 1, 1, "same"),
    ]
    for index, layer in enumerate(plan, start=1):
        if layer == "drop":
            h = keras.layers.Dropout(drop, name=f"dropout{index}")(h)
            continue
        filters, kernel, stride, padding = layer
        h = WeightNormConv2D(filters, kernel, stride, padding, name=f"wn_conv{index}")(h)
        h = keras.layers.LeakyReLU(negative_slope=alpha)(h)
    features = keras.layers.GlobalAveragePooling2D(name="features")(h)
    logits = WeightNormDense(
        int(cfg.num_classes), init_scale=0.1, dtype="float32", name="class_logits"
    )(features)
    features = keras.layers.Activation("linear", dtype="float32", name="features_out")(features)
    return keras.Model(images, [logits, features], name="discriminator")


def _improved_generator(cfg: DictConfig) -> keras.Model:
    width = int(cfg.g_size_mult)
    z = keras.Input((int(cfg.z_size),), name="z")
    h = keras.layers.Dense(4 * 4 * width * 8, name="project")(z)
    h = keras.layers.BatchNormalization(name="project_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Reshape((4, 4, width * 8))(h)
    for index, channels in enumerate((width * 4, width * 2), start=1):
        h = keras.layers.Conv2DTranspose(
            channels, 5, strides=2, padding="same", name=f"deconv{index}"
        )(h)
        h = keras.layers.BatchNormalization(name=f"deconv{index}_bn")(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="deconv3")(h)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(z, images, name="generator")
