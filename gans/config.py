"""Config defaults shared by the files in configs/, and the checks made before anything compiles.

A config is an ml_collections.ConfigDict; configs/<method>_<dataset>.py start from one of the
defaults here and change what their experiment needs. validate() turns every impossible value
into one UserError line, so a typo never costs a compilation.
"""
import importlib.util

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
  c.log = log_defaults()
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
  e.convention = ''  # FID convention: clean, pytorch-fid, tf ('' = the default, clean)
  e.batch_size = 200
  return e


def log_defaults() -> ml_collections.ConfigDict:
  """Where the scalars and sample sheets go besides metrics.jsonl and TensorBoard (always on)."""
  g = ml_collections.ConfigDict()
  g.wandb = ''  # a Weights & Biases PROJECT or ENTITY/PROJECT; '' = off (wandb never imported)
  g.wandb_mode = ''  # '' = wandb's own default (and $WANDB_MODE), or online, offline, disabled
  return g


def validate_log(g):
  """Checks of the log block: a W&B project W&B accepts, and wandb installed when it is asked
  for (found without importing it, before anything compiles)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  check(g.wandb_mode in ('', 'online', 'offline', 'disabled'),
        f'log.wandb_mode={g.wandb_mode!r}; use online, offline or disabled (or leave it empty)')
  if g.wandb:
    check(g.wandb.count('/') <= 1 and all(p and not set(p) & set('\\#?%: ')
                                          for p in g.wandb.split('/')),
          f'log.wandb={g.wandb!r}; use PROJECT or ENTITY/PROJECT, without \\ # ? % : or spaces')
    installed = (sys.modules['wandb'] is not None if 'wandb' in sys.modules
                 else importlib.util.find_spec('wandb') is not None)
    check(installed, f'--config.log.wandb={g.wandb} needs the wandb package: pip install wandb')


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


# Method knobs that sat at the config root before they moved into their method's block
# (config.<method module>.<knob>): old dotted key -> new dotted key. upgrade() applies it to
# every saved config.json that is read, so old workdirs load, evaluate and resume.
RENAMED = {
    'latent_dist': 'coupled.latent_dist',
    'g_steps': 'coupled.g_steps',
    'label_smoothing': 'coupled.label_smoothing',
    'd_bn': 'coupled.d_bn',
    'ema_decay': 'msggan.ema_decay',
    'normalize_latents': 'msggan.normalize_latents',
    'fresh_g_latents': 'msggan.fresh_g_latents',
    'shared_z': 'began.shared_z',
    'max_shift': 'classifier.max_shift',
    'eval_split': 'classifier.eval_split',
}


def flatten(tree, prefix: str = '') -> dict:
  """{'model.depth': 4, ...}: the leaves of nested dicts (a config's to_dict()) by dotted name."""
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items()
            for k, v in flatten(sub, f'{prefix}.{key}' if prefix else key).items()}
  return {prefix: tree}


def upgrade(saved: dict) -> dict:
  """A saved config (a dict, as read from config.json) with its keys renamed by RENAMED; a
  config already written with the new keys comes back unchanged. Does not modify `saved`."""
  out = dict(saved)
  for old, new in RENAMED.items():  # every old key is at the root, every new one a level down
    if old in out:
      block, leaf = new.split('.')
      out[block] = {**(out.get(block) or {}), leaf: out.pop(old)}
  return out


def make_tiny(c: ml_collections.ConfigDict, steps=20) -> ml_collections.ConfigDict:
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


def validate(config: ml_collections.ConfigDict):
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
  if 'log' in config:
    validate_log(config.log)
  method.validate(config)


def validate_data(data: ml_collections.ConfigDict, field='data'):
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


def from_file(path: str, overrides=None) -> ml_collections.ConfigDict:
  """The config of 'FILE[:variant]' (a configs/*.py file's get_config(variant)), with dotted
  overrides applied: what --config FILE:variant --config.x=y gives, for code that is not a CLI."""
  file, _, variant = str(path).partition(':')
  spec = importlib.util.spec_from_file_location('gans_config_file', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  config.update_from_flattened_dict(dict(overrides or {}))
  return config
