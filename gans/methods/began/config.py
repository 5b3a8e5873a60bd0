"""BEGAN's config: the defaults (carpedm20's recipe) and their validation."""
import ml_collections

from gans import config as config_lib
from gans.models import began as models

SCHEDULES = ('step', 'plateau')


def defaults() -> ml_collections.ConfigDict:
  """carpedm20/BEGAN-tensorflow's recipe (spec §5.2, §9) at 64x64 with the paper's separate z."""
  c = config_lib.base_defaults('began')
  c.model = ml_collections.ConfigDict()
  c.model.resolution = 64  # 8 * 2^k; levels = log2(resolution) - 2
  c.model.n = 128  # conv width; the encoder grows n, 2n, ..., levels * n
  c.model.g_n = 0  # G's width (0: n); unequal g_n and d_n test the equilibrium (spec §6 #5)
  c.model.d_n = 0  # D's width, its encoder and decoder (0: n)
  c.model.h = 64  # D's bottleneck N_h
  c.model.z = 64  # G's input N_z
  c.model.image_channels = 3
  c.model.repeat = 2  # convs per resolution level
  c.model.skip = False  # decoder skip connections (the authors' later code)
  c.model.residual_steps = 0  # vanishing residuals: carry 1 -> 0 linearly over this many steps
  c.model.tanh = False  # linear output, data in [-1, 1] (spec §9 decision 4)
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.loss = ml_collections.ConfigDict()
  c.loss.gamma = 0.5  # diversity ratio E[L(G(z))] / E[L(x)]
  c.loss.lambda_k = 0.001
  c.loss.eta = 1.0  # L(v) = mean |v - D(v)|^eta

  c.began = ml_collections.ConfigDict()  # the method's own knobs
  c.began.shared_z = False  # True: one z for L_D and L_G (carpedm20), one G forward less

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 8e-5
  c.optim.d_lr = 8e-5
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.schedule = 'step'  # 'step': halve every lr_update_step; 'plateau': halve when M stalls
  c.optim.lr_update_step = 100_000  # the halving interval, or the plateau's window of M
  c.optim.lr_floor = 2e-5  # neither schedule goes below it (0: no floor)
  c.optim.plateau_tolerance = 1e-4  # plateau: stalled unless M's window mean fell by this fraction
  c.optim.reset_moments = True  # plateau: a decay restarts both Adams (carpedm20/BEGAN-pytorch)

  c.figures = ml_collections.ConfigDict()
  c.figures.pairs = 6  # rows of each interpolation figure
  c.figures.points = 8  # images per interpolation row, both ends included
  c.figures.z_steps = 1000  # Adam steps finding z for a real image
  c.figures.z_lr = 0.01
  c.figures.snapshots = 6  # sample sheets along the M curve

  c.data.flip = False  # carpedm20 does not flip
  c.batch_size = 16
  c.num_steps = 500_000
  return c


def validate(config: ml_collections.ConfigDict):
  check = config_lib.check
  m, o = config.model, config.optim
  check(models.valid_resolution(m.resolution),
        f'model.resolution={m.resolution} must be a power of two >= {models.BASE} '
        '(BEGAN always bottoms out at 8x8)')
  check(min(m.n, m.h, m.z, m.repeat) >= 1,
        'model.n, model.h, model.z and model.repeat must be >= 1')
  check(min(m.get('g_n', 0), m.get('d_n', 0)) >= 0,
        f'model.g_n={m.get("g_n", 0)} and model.d_n={m.get("d_n", 0)} must be >= 0 (0: model.n)')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  check(m.residual_steps >= 0, 'model.residual_steps must be >= 0 (0: no vanishing residuals)')
  config_lib.check_dtype(m.dtype)
  check(0 <= config.loss.gamma <= 1, f'loss.gamma={config.loss.gamma} must be in [0, 1]')
  check(config.loss.lambda_k >= 0, f'loss.lambda_k={config.loss.lambda_k} must be >= 0')
  check(config.loss.eta >= 1, f'loss.eta={config.loss.eta} must be >= 1 (|v|^eta has an '
        'infinite gradient at 0 below 1)')
  check(o.g_lr > 0 and o.d_lr > 0, 'optim.g_lr and optim.d_lr must be > 0')
  check(0 <= o.lr_floor <= min(o.g_lr, o.d_lr),
        f'optim.lr_floor={o.lr_floor} must be in [0, min(optim.g_lr, optim.d_lr)]')
  check(o.schedule in SCHEDULES, f'optim.schedule={o.schedule!r}; choose one of '
        f'{", ".join(SCHEDULES)}')
  check(o.lr_update_step >= 1, 'optim.lr_update_step must be >= 1')
  check(0 <= o.plateau_tolerance < 1, 'optim.plateau_tolerance must be in [0, 1)')
  f = config.figures
  check(f.pairs >= 1 and f.points >= 2 and f.z_steps >= 0 and f.snapshots >= 1,
        'figures.pairs >= 1, figures.points >= 2, figures.z_steps >= 0, figures.snapshots >= 1')
  config_lib.validate_data(config.data)
