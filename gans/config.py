"""Config defaults shared by the files in configs/, and the checks made before anything compiles.

A config is an ml_collections.ConfigDict; configs/<method>_<dataset>.py start from one of the
defaults here and change what their experiment needs. validate() turns every impossible value
into one UserError line, so a typo never costs a compilation.
"""
import ml_collections

from gans.errors import UserError


def msggan_defaults() -> ml_collections.ConfigDict:
  """BMSG-GAN's own defaults (spec §10), on the embedded digits."""
  c = ml_collections.ConfigDict()
  c.method = 'msggan'
  c.seed = 0
  c.batch_size = 32  # global, over all devices of all processes
  c.num_steps = 10_000
  c.steps_per_dispatch = 10  # steps fused into one lax.scan per host dispatch

  c.model = ml_collections.ConfigDict()
  c.model.depth = 4
  c.model.resolution = ml_collections.config_dict.placeholder(int)  # optional; must be 2^(depth+1)
  c.model.latent_size = 512
  c.model.width = 512  # BMSG-GAN's 512; the channel rule scales with it
  c.model.image_channels = 3
  c.model.combine = 'simple'  # 'simple' (= 'lin_cat'), 'raw', 'cat_lin'
  c.model.mbstd = 'bmsg'  # 'bmsg' (one scalar), 'v1' (H x W map), 'none'
  c.model.equalized = True
  c.model.spectral_norm = False
  c.model.g_dilation = 1
  c.model.d_dilation = 1
  c.model.pixelnorm = True
  c.model.tanh = False
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.loss = ml_collections.ConfigDict()
  c.loss.name = 'relativistic-hinge'
  c.loss.gp_weight = 10.0  # wgan-gp; the penalty is averaged over the scale inputs
  c.loss.r1_gamma = 10.0  # ns-r1; adds gamma/2 * R1

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 0.003
  c.optim.d_lr = 0.003
  c.optim.b1 = 0.0
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8

  c.ema_decay = 0.999
  c.normalize_latents = True
  c.fresh_g_latents = False  # MSG-GAN v1 draws a new z for the G step

  c.data = ml_collections.ConfigDict()
  c.data.name = 'digits'  # 'digits', 'folder', or a TFDS name
  c.data.path = ''  # image folder for name='folder'
  c.data.split = 'train'
  c.data.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data_dir
  c.data.image_key = 'image'
  c.data.percentage = 100.0
  c.data.center_crop = 0
  c.data.flip = True
  c.data.on_device = 'auto'  # 'auto', 'yes', 'no'
  c.data.on_device_max_mb = 2048

  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.num_samples = 36

  # Metrics inside training (gans.evaluate), logged like the losses and written to eval/.
  c.eval = ml_collections.ConfigDict()
  c.eval.every = 0  # steps between evaluations; 0 = off
  c.eval.metrics = 'fid,kid'  # subset of fid,kid,is,pr
  c.eval.num_samples = 10_000
  c.eval.extractor = 'inception'  # or 'classifier' (with eval.classifier)
  c.eval.inception = ''  # weights file; '' = $GANS_INCEPTION or ~/.cache/gans/
  c.eval.classifier = ''  # workdir of a trained project classifier
  c.eval.batch_size = 200
  return c


def make_tiny(c, steps=20):
  """The `tiny` variant every config offers: same data and method, a model small enough for a
  CPU test (depth 2 = 8x8, width 16) and a few steps, so the whole path runs in seconds."""
  c.model.depth = 2
  c.model.width = 16
  c.model.latent_size = 16
  c.batch_size = 8
  c.num_steps = steps
  c.steps_per_dispatch = 5
  c.log_every = c.sample_every = c.checkpoint_every = 10
  c.num_samples = 4
  return c


def check_variant(variant, known=('tiny',)):
  if variant and variant not in known:
    raise UserError(f'unknown config variant {variant!r}; this config has: {", ".join(known)}')


def resolution(config):
  return 2 ** (config.model.depth + 1)


def _check(ok, message):
  if not ok:
    raise UserError(message)


def validate(config):
  """Raise UserError on the first impossible value. Device-count checks happen at start-up."""
  from gans import losses, methods  # registries; imported here to keep config import-light
  from gans.models import msggan as msggan_models
  methods.get(config.method)
  m = config.model
  _check(1 <= m.depth <= 9, f'model.depth={m.depth} is out of range; MSG-GAN supports 1..9 '
         '(4x4 to 1024x1024)')
  res = resolution(config)
  _check(m.resolution is None or m.resolution == res,
         f'model.resolution={m.resolution} is not 2^(depth+1)={res} for model.depth={m.depth}; '
         f'set --config.model.depth to match (resolution 2^(depth+1))')
  _check(m.latent_size > 0, f'model.latent_size={m.latent_size} must be positive')
  _check(m.width >= msggan_models.min_width(m.depth) and m.width & (m.width - 1) == 0,
         f'model.width={m.width} must be a power of two >= {msggan_models.min_width(m.depth)} '
         f'at depth {m.depth} (widths halve per level above 32x32)')
  _check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  _check(m.combine in msggan_models.COMBINES,
         f'model.combine={m.combine!r}; choose one of {", ".join(msggan_models.COMBINES)}')
  _check(m.mbstd in msggan_models.MBSTD_VARIANTS,
         f'model.mbstd={m.mbstd!r}; choose one of {", ".join(msggan_models.MBSTD_VARIANTS)}')
  _check(m.dtype in ('float32', 'bfloat16'), f'model.dtype={m.dtype!r}; use float32 or bfloat16')
  _check(m.g_dilation >= 1 and m.d_dilation >= 1, 'model.g_dilation and d_dilation must be >= 1')
  losses.get(config.loss.name)
  _check(config.batch_size >= 1, f'batch_size={config.batch_size} must be positive')
  _check(config.num_steps >= 1, f'num_steps={config.num_steps} must be positive')
  _check(config.steps_per_dispatch >= 1, 'steps_per_dispatch must be >= 1')
  for name in ('log_every', 'sample_every', 'checkpoint_every'):
    value = config[name]
    _check(value >= 1 and value % config.steps_per_dispatch == 0,
           f'{name}={value} must be a positive multiple of steps_per_dispatch='
           f'{config.steps_per_dispatch}, so that it falls on a dispatch boundary')
  _check(0.0 <= config.ema_decay < 1.0, f'ema_decay={config.ema_decay} must be in [0, 1)')
  _check(config.optim.g_lr > 0 and config.optim.d_lr > 0, 'optim.g_lr and optim.d_lr must be > 0')
  _check(0 < config.data.percentage <= 100,
         f'data.percentage={config.data.percentage} must be in (0, 100]')
  _check(config.data.on_device in ('auto', 'yes', 'no'),
         f'data.on_device={config.data.on_device!r}; use auto, yes or no')
  _check(config.data.name != 'folder' or config.data.path,
         'data.name=folder needs --config.data.path=/path/to/images')
  _check(config.num_samples >= 1, 'num_samples must be >= 1')
  _check(config.eval.every >= 0 and config.eval.every % config.log_every == 0,
         f'eval.every={config.eval.every} must be 0 (off) or a multiple of log_every='
         f'{config.log_every}, so that evaluations fall on log lines and out of the timing')
  if config.eval.every:
    from gans import evaluate
    evaluate.parse_metrics(config.eval.metrics)
    _check(config.eval.num_samples >= 10, 'eval.num_samples must be >= 10')
