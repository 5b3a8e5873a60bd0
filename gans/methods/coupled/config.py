"""The coupled methods' config: defaults (CoGAN's, SCoGAN's), the tiny variant, the configs'
variant names, and validation."""
import ml_collections

from gans import config as config_lib
from gans.data import pairs
from gans.methods.coupled import step
from gans.models import cogan as models
from gans.models import frozen

RESOLUTIONS = {'digits32': (32,), 'digits28': (28,), 'faces': (64, 128)}


def defaults(method: str = 'cogan') -> ml_collections.ConfigDict:
  """CoGAN on digits/negative digits at 32x32 (spec §4 defaults); SCoGAN: nothing shared."""
  c = config_lib.base_defaults(method)
  c.model = ml_collections.ConfigDict()
  c.model.arch = 'digits32'  # 'digits32' (§4 #1), 'digits28' (official), 'faces' (64/128)
  c.model.resolution = 32
  c.model.image_channels = 1  # §4 #3: 1 when both domains are grey, else 3
  c.model.latent_size = 100
  c.model.g_divisor = 1  # every G (and CC encoder) channel count / this: CPU configs, tiny
  c.model.d_divisor = 1  # every D channel count / this
  c.model.g_shared = 4 if method == 'cogan' else 0  # first G blocks shared (0 = independent)
  c.model.d_shared = 3 if method == 'cogan' else 0  # last D blocks shared
  c.model.weight_init = 'normal'  # §4 #11: normal (N(0,.02), bias .1), he (28x28), normal0
  c.model.prelu_init = 0.25  # §4 #10: per-channel slopes
  c.model.d_dropout = False  # faces D: SCoGAN's dropouts (§4 #15); digits D always has FC 0.5
  c.model.sample_mode = 'running'  # samples with BN running averages; 'batch': batch statistics
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.coupled = ml_collections.ConfigDict()  # the method's own knobs
  c.coupled.latent_dist = 'uniform'  # §4 #4: Uniform[-1, 1]; or 'normal'
  c.coupled.g_steps = 1  # §4 #16: G updates per D update (andrewliao11 uses 2)
  c.coupled.label_smoothing = 0.0  # one-sided: D's real target is 1 - this (§4 #16: off)
  c.coupled.d_bn = 'separate'  # §4 #8: real and fake in separate D calls; 'mixed': one BN batch

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 2e-4  # also the CC encoder's
  c.optim.d_lr = 2e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.weight_decay = 5e-4 if method == 'cogan' else 0.0  # §4 #9: coupled L2, kernels only

  c.reg = ml_collections.ConfigDict()  # §4 #18-23; weights 0 = off, spec defaults in comments
  c.reg.fr = 0.0  # feature regulariser (10)
  c.reg.fr_layers = 2  # the first S ConvT outputs after the FC block
  c.reg.sl = 0.0  # semantic loss (10)
  c.reg.sl_classifier = ''  # workdir of a classifier trained on both domains, or 'untrained'
  c.reg.cc = 0.0  # latent cycle consistency (10); the encoder is trained on CC x cc_encoder
  c.reg.cc_encoder = 1.0
  c.reg.cc_dropout = 0.4
  c.reg.weight_sim = 0.0  # the weight-similarity baseline (10)
  c.reg.pl_content = 0.0  # perceptual loss content weight (1e-3)
  c.reg.pl_style = 0.0  # perceptual loss style weight (1e-11)
  c.reg.pl_net = 'vgg19'  # 'vgg19' (reg.pl_vgg_weights), 'classifier' (reg.pl_classifier),
  c.reg.pl_vgg_weights = ''  # or 'untrained_vgg19' (random stand-in for smoke tests)
  c.reg.pl_classifier = ''
  c.reg.pl_gram = 'batch_mean'  # §4 #22; 'per_sample' is the reference's parity option
  # The frozen nets' array digests (gans.models.frozen.array_digest): '' = recorded at the first
  # start (config.json); a resume, or a digest set here, with other weights is refused.
  c.reg.sl_classifier_digest = ''
  c.reg.pl_net_digest = ''

  pairs.add_blocks(c, 'digits2negative')  # data_b and pair: the two domains

  # Beside the shared eval block (config.eval_defaults): eval.classifier is the same project
  # classifier there and here, the judge of pair agreement.
  c.eval.num_pairs = 10_000  # pairs scored at every checkpoint (metrics.md §6.1); 0 = none
  c.eval.translation_steps = 500  # cross-domain translation figure: Adam steps on z

  c.batch_size = 128  # per domain (§4 #13)
  c.num_steps = 25_000  # D+G step pairs
  return c


# The soft couplings the SCoGAN configs offer by name, each at the SCoGAN code's weight 10.
COUPLINGS = {'fr': ('fr',), 'cc': ('cc',), 'fr_sl': ('fr', 'sl'), 'sl_cc': ('sl', 'cc'),
             'cc_fr': ('cc', 'fr'), 'fr_sl_cc': ('fr', 'sl', 'cc'), 'weight_sim': ('weight_sim',)}


def couple(c: ml_collections.ConfigDict, name: str, sl_classifier: str,
           tiny_run: bool = False) -> ml_collections.ConfigDict:
  """Turn on the couplings COUPLINGS[name]; SL reads `sl_classifier` (a workdir of
  configs/classifier_pair.py), or an untrained stand-in in a tiny run."""
  for reg in COUPLINGS[name]:
    c.reg[reg] = 10.0
  if c.reg.sl:
    c.reg.sl_classifier = frozen.UNTRAINED if tiny_run else sl_classifier
  return c


# The digits configs' size, which a 2-core CPU trains in minutes: G's channels / 8 (D stays full
# width: it is cheap, and a thin one cannot tell the mean image from the digits; G collapsed to
# it at 8 in trials), batch 32 per domain, 2,000 steps, 2,000 pairs scored.
CPU_SIZE = {'model.g_divisor': 8, 'batch_size': 32, 'num_steps': 2000, 'log_every': 50,
            'sample_every': 500, 'checkpoint_every': 500, 'eval.num_pairs': 2000}


def cpu_size(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """c at CPU_SIZE."""
  c.update_from_flattened_dict(CPU_SIZE)
  return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """make_tiny, plus few evaluation pairs and translation steps."""
  config_lib.make_tiny(c)
  c.eval.num_pairs, c.eval.translation_steps = 16, 2
  return c


def parse_variant(variant: str, names):
  """(name, is_tiny) of a config argument 'NAME', 'NAME_tiny' or 'tiny', NAME in `names`."""
  known = ('tiny',) + tuple(names) + tuple(f'{n}_tiny' for n in names)
  config_lib.check_variant(variant, known)
  is_tiny = variant == 'tiny' or variant.endswith('_tiny')
  return ('' if variant == 'tiny' else variant.removesuffix('_tiny')), is_tiny


def validate(config: ml_collections.ConfigDict):
  check = config_lib.check
  m, r, p, k = config.model, config.reg, config.pair, config.coupled
  check(m.arch in models.ARCHS, f'model.arch={m.arch!r}; choose one of {", ".join(models.ARCHS)}')
  check(m.resolution in RESOLUTIONS[m.arch], f'model.resolution={m.resolution} is not one '
        f'{m.arch} makes: {", ".join(map(str, RESOLUTIONS[m.arch]))}')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  config_lib.check_dtype(m.dtype)
  check(m.latent_size >= 1 and m.g_divisor >= 1 and m.d_divisor >= 1,
        'model.latent_size, model.g_divisor and model.d_divisor must be >= 1')
  g_layers, d_layers = step.layer_lists(config)
  check(0 <= m.g_shared < len(g_layers), f'model.g_shared={m.g_shared} must be in 0..'
        f'{len(g_layers) - 1} ({m.arch} G has {len(g_layers)} blocks; the output is never shared)')
  check(0 <= m.d_shared < len(d_layers), f'model.d_shared={m.d_shared} must be in 0..'
        f'{len(d_layers) - 1} ({m.arch} D has {len(d_layers)} blocks; the first is per domain)')
  check(m.weight_init in models.INITS,
        f'model.weight_init={m.weight_init!r}; choose one of {", ".join(models.INITS)}')
  check(m.sample_mode in ('running', 'batch'), f'model.sample_mode={m.sample_mode!r}; use '
        'running or batch')
  check(k.latent_dist in ('uniform', 'normal'),
        f'coupled.latent_dist={k.latent_dist!r}; use uniform or normal')
  check(k.g_steps >= 1, f'coupled.g_steps={k.g_steps} must be >= 1')
  check(0 <= k.label_smoothing < 1, f'coupled.label_smoothing={k.label_smoothing} must be in '
        '[0, 1)')
  check(k.d_bn in ('separate', 'mixed'), f'coupled.d_bn={k.d_bn!r}; use separate or mixed')
  o = config.optim
  check(o.g_lr > 0 and o.d_lr > 0 and o.weight_decay >= 0,
        'optim.g_lr and optim.d_lr must be > 0, optim.weight_decay >= 0')
  for name in ('fr', 'sl', 'cc', 'cc_encoder', 'weight_sim', 'pl_content', 'pl_style'):
    check(r[name] >= 0, f'reg.{name}={r[name]} must be >= 0')
  check(1 <= r.fr_layers <= len(g_layers) - 2, f'reg.fr_layers={r.fr_layers} must be in 1..'
        f'{len(g_layers) - 2} (ConvT blocks before the output)')
  check(not r.sl or r.sl_classifier, 'reg.sl > 0 needs reg.sl_classifier=WORKDIR of a classifier '
        'trained on both domains (python train.py --config configs/classifier_pair.py ...)')
  judge = config.eval.get('classifier') or ''
  check(not r.sl or r.sl_classifier == frozen.UNTRAINED or r.sl_classifier != judge,
        f'reg.sl_classifier and eval.classifier are both {judge!r}: pair agreement judged by '
        'the classifier SL trained the generators to please is circular; judge with another '
        '(e.g. configs/classifier_pair.py trained with another --config.seed)')
  check(0 <= r.cc_dropout < 1, f'reg.cc_dropout={r.cc_dropout} must be in [0, 1)')
  check(r.pl_net in ('vgg19', 'classifier', 'untrained_vgg19'),
        f'reg.pl_net={r.pl_net!r}; use vgg19, classifier or untrained_vgg19')
  for name in ('sl_classifier_digest', 'pl_net_digest'):  # absent from configs saved before
    digest = r.get(name) or ''
    check(not set(digest) - set('0123456789abcdef'), f'reg.{name}={digest!r} is not a digest: '
          'copy it from a run\'s config.json, or leave it empty')
  check(r.pl_gram in ('batch_mean', 'per_sample'), f'reg.pl_gram={r.pl_gram!r}; use batch_mean '
        'or per_sample')
  if r.pl_content or r.pl_style:
    check(r.pl_net != 'vgg19' or r.pl_vgg_weights, 'the perceptual loss needs VGG19 ImageNet '
          'weights and none were given: set --config.reg.pl_vgg_weights=FILE.npz (made once by '
          '`python -m gans.models.vgg` from the Keras notop .h5; see gans/models/vgg.py), or use '
          'the project classifier\'s features: --config.reg.pl_net=classifier '
          '--config.reg.pl_classifier=WORKDIR')
    check(r.pl_net != 'classifier' or r.pl_classifier,
          'reg.pl_net=classifier needs reg.pl_classifier=WORKDIR of a trained classifier')
  check(p.transform in pairs.TRANSFORMS,
        f'pair.transform={p.transform!r}; choose one of {", ".join(pairs.TRANSFORMS)}')
  check(0 <= 2 * p.pad < m.resolution, f'pair.pad={p.pad} leaves no image at {m.resolution}')
  check(not p.attribute or not config.data_b.name,
        'pair.attribute splits one dataset: leave data_b.name empty')
  check(0 < p.prune_min_confidence <= 1, 'pair.prune_min_confidence must be in (0, 1]')
  check(config.eval.num_pairs >= 0 and config.eval.translation_steps >= 0,
        'eval.num_pairs and eval.translation_steps must be >= 0')
  config_lib.validate_data(config.data)
  if config.data_b.name:
    config_lib.validate_data(config.data_b, 'data_b')
