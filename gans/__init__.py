"""gans: MSG-GAN, CoGAN, SCoGAN and BEGAN in JAX/Flax, built for accelerator throughput.

`gans.load_generator(path)` loads a generator written by `sample.py --export`; it is imported
on first use, so `import gans` stays cheap.
"""


def __getattr__(name):
  if name == 'load_generator':
    from gans.export import load_generator  # pylint: disable=g-import-not-at-top
    return load_generator
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
