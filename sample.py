"""Samples of a training run, or its generator on its own.

  python sample.py --workdir DIR [--step N] --num 50000 --out OUT [--seed S] [--batch_size B]
                   [--truncation T] [--scale R] [--interpolate K]
  python sample.py --workdir DIR [--step N] --export G.msgpack

OUT is a folder (one PNG per image, zero-padded names), an .npz (uint8 NHWC under `images`;
coupled methods: `a` and `b`, the two domains of the same latents) or a .png (one sheet; a
coupled run's two domains side by side). Samples are those eval.py scores: with the same --seed
and --batch_size (200 in both) and no truncation, bit for bit. --scale R takes MSG-GAN's
R x R output instead of the full resolution. --truncation T conditions each latent component
on |z| <= T (Gaussian latents: the components beyond redrawn inside, then the method's
normalisation; uniform latents on [-1, 1]: scaled by min(T, 1); gans/latents.py).
--interpolate K writes --num (default 8) walks of K frames between pairs of latents, slerp
for Gaussian latents and lerp for uniform ones, as a .png of strips or an animated .gif.
--export writes only the generator's variables with the run's config and step (msgpack), for
gans.load_generator(path). OUT, DIR and the export may be gs:// URLs.
"""
import sys

from absl import flags

from gans import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training run directory (a path or a URL).',
                               required=True)
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_NUM = flags.DEFINE_integer('num', None, 'Images to write (default 50000), or with '
                            '--interpolate the walks (default 8).')
_OUT = flags.DEFINE_string('out', None, 'A folder, an .npz or a .png (.png or .gif with '
                           '--interpolate).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latents (as eval.py --seed).')
_BATCH = flags.DEFINE_integer('batch_size', 200, 'Images per generation step over all devices '
                              '(as eval.py --batch_size; it decides the latents of a seed).')
_TRUNCATION = flags.DEFINE_float('truncation', None, 'Condition each latent component on '
                                 '|z| <= T.')
_SCALE = flags.DEFINE_integer('scale', None, 'Output resolution of a multi-scale generator '
                              '(MSG-GAN), e.g. 8; default the full resolution.')
_INTERPOLATE = flags.DEFINE_integer('interpolate', None, 'Frames per interpolation walk.')
_EXPORT = flags.DEFINE_string('export', None, 'Write the generator to this msgpack file.')


def main(argv):
  del argv
  from gans.errors import UserError
  if (_OUT.value is None) == (_EXPORT.value is None):
    raise UserError('pass one of --out (samples) and --export (the generator)')
  from gans import distributed
  distributed.initialize()
  cli.enable_compilation_cache()
  if _EXPORT.value:
    from gans import export
    print(export.export(_WORKDIR.value, _EXPORT.value, _STEP.value))
    return
  from gans import sampler
  print(sampler.sample(_WORKDIR.value, _OUT.value, _NUM.value, _STEP.value, _SEED.value,
                       _BATCH.value, _TRUNCATION.value, _SCALE.value, _INTERPOLATE.value))


if __name__ == '__main__':
  sys.exit(cli.run(main))
