"""A small CNN classifier: the project's own judge of digits and domains.

It serves three masters: SCoGAN's semantic loss (SL) compares its class probabilities on the
two generators' images, pair agreement asks whether it gives both images of a pair one label,
and eval.py computes FID-style metrics in its feature space where Inception is meaningless
(8x8 digits). Plain convs, ReLU and no BatchNorm, so a frozen copy has no state but its params.

The layers carry explicit names (the ones Flax gave them automatically before they were named,
so every saved classifier loads), and `features=True` returns named feature taps: conv0 ..
conv5 (each conv's ReLU output) and fc (the penultimate features).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers

CONV_TAPS = tuple(f'conv{i}' for i in range(6))


class Classifier(nn.Module):
  num_classes: int = 10
  width: int = 32
  feature_size: int = 128

  @nn.compact
  def __call__(self, x, features=False):
    """Logits for float images in [-1, 1], NHWC at the trained resolution; with `features`,
    (logits, {'conv0': ..., 'conv5': ..., 'fc': ...}) instead."""
    taps = {}
    for i in range(3):
      ch = self.width * 2 ** i
      for j in (2 * i, 2 * i + 1):
        x = taps[f'conv{j}'] = nn.relu(nn.Conv(ch, (3, 3), name=f'Conv_{j}')(x))
      x = layers.max_pool(x) if x.shape[1] > 1 else x
    f = taps['fc'] = nn.relu(nn.Dense(self.feature_size, name='Dense_0')(x.reshape(x.shape[0], -1)))
    logits = nn.Dense(self.num_classes, name='Dense_1')(f)
    return (logits, taps) if features else logits


def adapt(x, resolution: int, channels: int):
  """Float images of any size and channel count -> the classifier's input.

  Bilinear resize (antialiased when shrinking) and ITU-R 601 luma for RGB -> grey (the same
  rule the data sources use), repetition for grey -> RGB.
  """
  if x.shape[-1] != channels:
    if channels == 1:
      x = jnp.tensordot(x, jnp.array([0.299, 0.587, 0.114], x.dtype), axes=([-1], [0]))[..., None]
    else:
      x = jnp.repeat(x, channels, axis=-1)
  if x.shape[1:3] != (resolution, resolution):
    x = jax.image.resize(x, (x.shape[0], resolution, resolution, channels), 'bilinear')
  return x
