"""Generator and discriminator networks, built by small ``build_*`` functions.

Two architectures, chosen by ``model.name``:

* ``tutorial`` -- the SVHN semi-supervised GAN of the tutorial the project grew from,
  with its two faults fixed: the seventh convolution reads the sixth's output (the
  original read the fifth), and batch normalisation uses moving statistics at inference
  (the original always used batch statistics, so a prediction depended on the batch).
* ``improved_gan`` -- the SVHN feature-matching model of Salimans et al. 2016's code:
  weight-normalised convolutions with data-dependent initialisation, dropout, NIN layers.

Discriminators map images in [-1, 1] to ``(class_logits, features)``; ``features`` are
the globally pooled activations that feature matching compares. Logits and features are
float32 under any mixed-precision policy.
"""

from __future__ import annotations

from typing import Any, Literal

import keras
import tensorflow as tf

from ssgan.config import ModelConfig

IMAGE_SHAPE = (32, 32, 3)
# A shape as Keras passes it to build(): ints, and None where unknown (the batch).
Shape = tuple[Any, ...]
# One convolution of the improved discriminator: filters, kernel, stride, padding.
ConvSpec = tuple[int, int, int, str]


def build_generator(model: ModelConfig) -> keras.Model:
    """z [B, z_size] -> images [B, 32, 32, 3] in [-1, 1]."""
    if model.name == "improved_gan":
        return _improved_generator(model)
    return _tutorial_generator(model)


def build_discriminator(model: ModelConfig) -> keras.Model:
    """images [B, 32, 32, 3] in [-1, 1] -> (logits [B, num_classes], features [B, F])."""
    if model.name == "improved_gan":
        return _improved_discriminator(model)
    return _tutorial_discriminator(model)


# -- dropout ----------------------------------------------------------------------------


class ByteMaskDropout(keras.layers.Layer):
    """Dropout whose mask costs one random byte per element instead of a float32 uniform.

    Four elements share one 32-bit Philox draw, so the mask needs a quarter of the random
    numbers; each element stays independent. The rate is rounded to a multiple of 1/256
    (0.5 exactly; 0.2 becomes 51/256 = 0.199) and kept values are scaled by
    1 / (1 - rounded rate), so the expectation is the input's, as with Keras' Dropout.
    The seed state is a ``seed_generator_state`` variable like Keras' own, so training
    checkpoints it and resumes draw the same masks.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.threshold = round(self.rate * 256)  # a byte below it drops the element
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        if not training or self.threshold == 0:
            return inputs
        # Stateless ops take int32 seeds; the generator's state may be int64 (as Keras).
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        count = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(count + 3) // 4], seed=seed, minval=None, maxval=None, dtype=tf.uint32
        )
        noise = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:count]
        keep = tf.reshape(noise >= self.threshold, tf.shape(inputs))
        scale = tf.cast(256.0 / (256 - self.threshold), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def build_dropout(rate: float, model: ModelConfig, name: str) -> keras.layers.Layer:
    """Keras' Dropout, or ``ByteMaskDropout`` with ``model.dropout_mask=byte`` (faster
    masks, the rate rounded to 1/256; docs/model.md)."""
    if model.dropout_mask == "byte":
        return ByteMaskDropout(rate, name=name)
    return keras.layers.Dropout(rate, name=name)


# -- tutorial ---------------------------------------------------------------------------


def _tutorial_generator(model: ModelConfig) -> keras.Model:
    """Dense to 4x4x(4w), transposed 5x5 stride-2 convolutions to 8x8x(2w), 16x16x(w),
    32x32x3 (w = g_size_mult); batch norm and leaky ReLU between, tanh out."""
    width, alpha = model.g_size_mult, model.leaky_alpha
    z = keras.Input((model.z_size,), name="z")
    h = keras.layers.Dense(4 * 4 * width * 4, name="project")(z)
    h = keras.layers.Reshape((4, 4, width * 4))(h)
    h = keras.layers.BatchNormalization(name="project_bn")(h)
    h = keras.layers.LeakyReLU(negative_slope=alpha)(h)
    for index, channels in enumerate((width * 2, width), start=1):
        h = keras.layers.Conv2DTranspose(
            channels, 5, strides=2, padding="same", name=f"deconv{index}"
        )(h)
        h = keras.layers.BatchNormalization(name=f"deconv{index}_bn")(h)
        h = keras.layers.LeakyReLU(negative_slope=alpha)(h)
    h = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="deconv3")(h)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(z, images, name="generator")


# (filters as multiples of d_size_mult, stride, batch norm, dropout after): the tutorial's.
_TUTORIAL_CONVS = (
    (1, 2, False, True),
    (1, 2, True, False),
    (1, 2, True, True),
    (2, 1, True, False),
    (2, 1, True, False),
    (2, 2, True, True),
    (2, 1, False, False),  # no batch norm: feature matching needs free feature means
)


def _tutorial_discriminator(model: ModelConfig) -> keras.Model:
    """Input dropout, seven 3x3 convolutions (32 -> 16 -> 8 -> 4 -> 4 -> 4 -> 2 -> 2),
    global average pooling -> features, dense -> class logits."""
    width, alpha, drop = model.d_size_mult, model.leaky_alpha, model.drop_rate
    images = keras.Input(IMAGE_SHAPE, name="images")
    h = build_dropout(drop / 2.5, model, "input_dropout")(images)
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
            h = build_dropout(drop, model, f"conv{index}_dropout")(h)
    features = keras.layers.GlobalAveragePooling2D(name="features")(h)
    logits = keras.layers.Dense(model.num_classes, dtype="float32", name="class_logits")(features)
    features = keras.layers.Activation("linear", dtype="float32", name="features_out")(features)
    return keras.Model(images, [logits, features], name="discriminator")


# -- improved_gan (Salimans et al. 2016, SVHN feature matching) ---------------------------


class _WeightNormalized(keras.layers.Layer):
    """Base of the weight-normalised layers (Salimans & Kingma 2016): w = g * v / ||v||,
    one norm per output unit, then a bias b.

    Data-dependent initialisation: while ``pending_init`` is set, the next call measures
    the per-unit mean m and standard deviation s of v/||v|| applied to its input, sets
    g = init_scale / s and b = -m * init_scale / s, so the layer's outputs start with zero
    mean and ``init_scale`` standard deviation on that batch. ``train_scale=False`` keeps g
    at its initialised value, as the reference code does in all but the output layers.
    """

    # Axes of the kernel that belong to one output unit (summed in ||v||).
    kernel_norm_axes: tuple[int, ...] = ()

    def __init__(self, init_scale: float = 1.0, train_scale: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_scale, self.train_scale = init_scale, train_scale
        self.pending_init = False

    def _add_parameters(self, kernel_shape: tuple[int, ...], units: int) -> None:
        self.v = self.add_weight(
            name="v", shape=kernel_shape, initializer=keras.initializers.RandomNormal(0.0, 0.05)
        )
        self.g = self.add_weight(
            name="g", shape=(units,), initializer="ones", trainable=self.train_scale
        )
        self.b = self.add_weight(name="b", shape=(units,), initializer="zeros")

    def _direction(self, dtype: tf.DType) -> tf.Tensor:
        """v / ||v|| per output unit (the 1e-6 as in the reference code)."""
        squares = tf.reduce_sum(tf.square(self.v), axis=self.kernel_norm_axes, keepdims=True)
        norm = tf.sqrt(squares + 1e-6)
        return tf.cast(self.v / norm, dtype)

    def _scale_and_shift(self, pre: tf.Tensor) -> tf.Tensor:
        if self.pending_init:
            axes = list(range(len(pre.shape) - 1))
            mean, variance = tf.nn.moments(tf.cast(pre, tf.float32), axes=axes)
            inverse_std = self.init_scale / tf.sqrt(variance + 1e-12)
            self.g.assign(inverse_std)
            self.b.assign(-mean * inverse_std)
            self.pending_init = False
        return pre * tf.cast(self.g, pre.dtype) + tf.cast(self.b, pre.dtype)


class WeightNormDense(_WeightNormalized):
    """Dense layer with weight normalisation and data-dependent initialisation."""

    kernel_norm_axes = (0,)

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape: Shape) -> None:
        self._add_parameters((int(input_shape[-1]), self.units), self.units)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self._scale_and_shift(tf.matmul(inputs, self._direction(inputs.dtype)))


class WeightNormConv2D(_WeightNormalized):
    """2-D convolution (kernel [h, w, in, out]) with weight normalisation."""

    kernel_norm_axes = (0, 1, 2)

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        padding: str = "same",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, kernel_size
        self.strides, self.padding = strides, padding.upper()

    def build(self, input_shape: Shape) -> None:
        shape = (self.kernel_size, self.kernel_size, int(input_shape[-1]), self.filters)
        self._add_parameters(shape, self.filters)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        kernel = self._direction(inputs.dtype)
        pre = tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding)
        return self._scale_and_shift(pre)


class WeightNormConv2DTranspose(_WeightNormalized):
    """Stride-s "same" transposed convolution (kernel [h, w, out, in]) with weight norm:
    the reference generator's output layer."""

    kernel_norm_axes = (0, 1, 3)

    def __init__(self, filters: int, kernel_size: int, strides: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides

    def build(self, input_shape: Shape) -> None:
        shape = (self.kernel_size, self.kernel_size, self.filters, int(input_shape[-1]))
        self._add_parameters(shape, self.filters)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        batch, height, width = tf.shape(inputs)[0], inputs.shape[1], inputs.shape[2]
        output_shape = [batch, height * self.strides, width * self.strides, self.filters]
        pre = tf.nn.conv2d_transpose(
            inputs, self._direction(inputs.dtype), output_shape, self.strides, padding="SAME"
        )
        return self._scale_and_shift(pre)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch, height, width, _ = input_shape
        return (batch, height * self.strides, width * self.strides, self.filters)


def data_dependent_init(model: keras.Model, batch: tf.Tensor) -> bool:
    """Initialise every weight-normalised layer of ``model`` from one batch; return
    whether there were any. One eager forward pass in training mode: layers run in
    order, so each one measures statistics of already-initialised inputs."""
    layers = [layer for layer in _all_layers(model) if isinstance(layer, _WeightNormalized)]
    for layer in layers:
        layer.pending_init = True
    if layers:
        model(batch, training=True)
    return bool(layers)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.extend(_all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def _improved_discriminator(model: ModelConfig) -> keras.Model:
    """64/64/64(s2) - 128/128/128(s2) - 128 valid - NIN 128 x2, as the reference code:
    dropout 0.2 on the input and ``drop_rate`` after each stride-2 block, lReLU, weight
    norm everywhere (g fixed after init except in the output layer), no batch norm."""
    scale = model.d_size_mult / 64.0
    narrow, wide = max(1, round(64 * scale)), max(1, round(128 * scale))
    alpha, drop = model.leaky_alpha, model.drop_rate
    plan: tuple[ConvSpec | Literal["dropout"], ...] = (
        (narrow, 3, 1, "same"),
        (narrow, 3, 1, "same"),
        (narrow, 3, 2, "same"),
        "dropout",
        (wide, 3, 1, "same"),
        (wide, 3, 1, "same"),
        (wide, 3, 2, "same"),
        "dropout",
        (wide, 3, 1, "valid"),
        (wide, 1, 1, "same"),  # the two "network in network" layers
        (wide, 1, 1, "same"),
    )
    images = keras.Input(IMAGE_SHAPE, name="images")
    h = build_dropout(0.2, model, "input_dropout")(images)
    for index, layer in enumerate(plan, start=1):
        if layer == "dropout":
            h = build_dropout(drop, model, f"dropout{index}")(h)
            continue
        filters, kernel, stride, padding = layer
        h = WeightNormConv2D(filters, kernel, stride, padding, name=f"wn_conv{index}")(h)
        h = keras.layers.LeakyReLU(negative_slope=alpha, name=f"wn_conv{index}_act")(h)
    features = keras.layers.GlobalAveragePooling2D(name="features")(h)
    logits = WeightNormDense(
        model.num_classes, init_scale=0.1, train_scale=True, dtype="float32",
        name="class_logits",
    )(features)  # fmt: skip
    features = keras.layers.Activation("linear", dtype="float32", name="features_out")(features)
    return keras.Model(images, [logits, features], name="discriminator")


def _improved_generator(model: ModelConfig) -> keras.Model:
    """z -> dense 4x4x(8w) -> deconv 8x8x(4w) -> 16x16x(2w) -> 32x32x3 (w = g_size_mult,
    512/256/128 at 64 as the reference): batch norm without scale and ReLU, then a
    weight-normalised tanh output layer."""
    width = model.g_size_mult
    init = keras.initializers.RandomNormal(0.0, 0.05)
    z = keras.Input((model.z_size,), name="z")
    h = keras.layers.Dense(4 * 4 * width * 8, kernel_initializer=init, name="project")(z)
    h = keras.layers.BatchNormalization(scale=False, name="project_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Reshape((4, 4, width * 8))(h)
    for index, channels in enumerate((width * 4, width * 2), start=1):
        h = keras.layers.Conv2DTranspose(
            channels, 5, strides=2, padding="same", kernel_initializer=init,
            name=f"deconv{index}",
        )(h)  # fmt: skip
        h = keras.layers.BatchNormalization(scale=False, name=f"deconv{index}_bn")(h)
        h = keras.layers.ReLU()(h)
    h = WeightNormConv2DTranspose(3, 5, init_scale=0.1, train_scale=True, name="deconv3")(h)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(z, images, name="generator")
