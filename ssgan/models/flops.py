"""FLOP counts of the networks' forward passes (each method counts its step from them:
``ClassifierMethod.step_flops``)."""

from __future__ import annotations

import keras
import numpy as np


def layer_forward_flops(model: keras.Model) -> float:
    """Forward FLOPs per image of a network's conv, transposed-conv and dense layers
    (2 FLOPs per multiply-add; other layers are negligible next to these)."""
    total = 0.0
    for layer in _leaf_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        kernel_size = int(np.prod(kernel.shape))
        out_shape = layer.output.shape if hasattr(layer, "output") else None
        if isinstance(layer, keras.layers.Conv2DTranspose):
            in_shape = layer.input.shape
            total += 2.0 * in_shape[1] * in_shape[2] * kernel_size
        elif len(kernel.shape) == 4 and out_shape is not None:
            total += 2.0 * out_shape[1] * out_shape[2] * kernel_size
        else:
            total += 2.0 * kernel_size
    return total


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves
