"""Config defaults shared by the files in configs/, and the checks made before anything compiles.

A config is an ml_collections.ConfigDict; configs/<method>_<dataset>.py start from one of the
defaults here and change what their experiment needs. validate() turns every impossible value
into one UserError line, so a typo never costs a compilation.
"""
import ml_collections

from gans import metrics
from gans.errors import UserError


def base_defaults(method: str) -> ml_collections.ConfigDict:
  """Fields every method has: the run's length and batch, its data, and its output intervals."""
  c = ml_collections.ConfigDict()
  c.method = method
  c.seed = 0
  c.batch_size = 32  # global, over all devices of all processes
  c.num_steps = 10_000
  c.steps_per_dispatch = 10  # steps fused into one lax.scan per host dispatch
  c.data = data_defaults()
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  c.num_samples = 36
  c.eval = eval_defaults()
  return c


def eval_defaults() -> ml_collections.ConfigDict:
  """Sample-quality metrics inside training (gans.evaluate), logged like the losses and written
  to DIR/eval/<step>.json. Only methods that generate use them."""
  e = ml_collections.ConfigDict()
  e.every = 0  # steps between evaluations; 0 = off
  e.metrics = 'fid,kid'  # subset of fid,kid,is,pr
  e.num_samples = 10_000
  e.extractor = 'inception'  # or 'classifier' (with eval.classifier)
  e.inception = ''  # weights file; '' = $GANS_INCEPTION or ~/.cache/gans/
  e.classifier = ''  # workdir of a trained project classifier
  e.batch_size = 200
  return e


def data_defaults(name: str = 'digits') -> ml_collections.ConfigDict:
  """One image dataset: what gans.data.make_source reads."""
  d = ml_collections.ConfigDict()
  d.name = name  # 'digits', 'folder', 'idx' (MNIST-format files), or a TFDS name
  d.path = ''  # the folder for name='folder' or 'idx'
  d.split = 'train'
  d.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data_dir
  d.image_key = 'image'
  d.label_key = 'label'  # for methods that train on labels (the classifier)
  d.percentage = 100.0
  d.center_crop = 0
  d.flip = True
  d.on_device = 'auto'  # 'auto', 'yes', 'no'
  d.on_device_max_mb = 2048
  return d


def make_tiny(c, steps=20):
  """The `tiny` variant every config offers: same data and method, the method's smallest model
  (its tiny_model) and a few steps, so the whole path runs in seconds on a CPU."""
  from gans import methods  # pylint: disable=g-import-not-at-top
  c.model.update(methods.get(c.method).tiny_model)
  c.batch_size = 8
  c.num_steps = steps
  c.steps_per_dispatch = 5
  c.log_every = c.sample_every = c.checkpoint_every = 10
  c.num_samples = 4
  return c


def check_variant(variant, known=('tiny',)):
  if variant and variant not in known:
    raise UserError(f'unknown config variant {variant!r}; this config has: {", ".join(known)}')


def check(ok, message):
  """Raise `message` as a UserError unless ok: the one-line form of every config check."""
  if not ok:
    raise UserError(message)


def check_dtype(dtype):
  """model.dtype, the compute dtype: parameters and optimizer state stay float32."""
  check(dtype in ('float32', 'bfloat16'), f'model.dtype={dtype!r}; use float32 or bfloat16')


def validate(config):
  """Raise UserError on the first impossible value. Device-count checks happen at start-up.

  The fields every method has are checked here; the method checks its own (method.validate).
  """
  from gans import methods  # pylint: disable=g-import-not-at-top
  method = methods.get(config.method)
  check(config.batch_size >= 1, f'batch_size={config.batch_size} must be positive')
  check(config.num_steps >= 1, f'num_steps={config.num_steps} must be positive')
  check(config.steps_per_dispatch >= 1, 'steps_per_dispatch must be >= 1')
  for name in ('log_every', 'sample_every', 'checkpoint_every'):
    value = config[name]
    check(value >= 1 and value % config.steps_per_dispatch == 0,
          f'{name}={value} must be a positive multiple of steps_per_dispatch='
          f'{config.steps_per_dispatch}, so that it falls on a dispatch boundary')
  check(config.num_samples >= 1, 'num_samples must be >= 1')
  validate_eval(config.eval, config.log_every)
  method.validate(config)


def validate_data(data, field='data'):
  """Checks of one data block (see data_defaults); `field` names it in the message."""
  check(0 < data.percentage <= 100,
        f'{field}.percentage={data.percentage} must be in (0, 100]')
  check(data.on_device in ('auto', 'yes', 'no'),
        f'{field}.on_device={data.on_device!r}; use auto, yes or no')
  check(data.name not in ('folder', 'idx') or data.path,
        f'{field}.name={data.name} needs --config.{field}.path=DIR')


def validate_eval(e, log_every):
  check(e.every >= 0 and e.every % log_every == 0,
        f'eval.every={e.every} must be 0 (off) or a multiple of log_every={log_every}, so that '
        'evaluations fall on log lines and out of the timing')
  if e.every:
    metrics.parse_metrics(e.metrics)
    check(e.num_samples >= 10, f'eval.num_samples={e.num_samples} must be >= 10')
