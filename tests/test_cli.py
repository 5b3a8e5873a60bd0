"""A user's mistake gets one line on stderr and exit code 2, never a traceback."""
import pytest

from conftest import run_cli

TINY = ['train.py', '--config', 'configs/msggan_digits.py:tiny']


def assert_one_line_error(result, *fragments):
  assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
  assert 'Traceback' not in result.stderr, result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1, result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize('override, fragments', [
    ('--config.no_such_key=1', ['no_such_key']),
    ('--config.model.depth=12', ['model.depth=12']),
    ('--config.model.resolution=100', ['model.resolution=100', '2^(depth+1)']),
    ('--config.loss.name=wgan', ["unknown loss 'wgan'", 'relativistic-hinge']),
    ('--config.model.combine=sum', ["model.combine='sum'"]),
    ('--config.model.depth=9', ['model.width=16', '>= 64']),
    ('--config.log_every=7', ['log_every=7', 'steps_per_dispatch']),
    ('--config.data.name=mnsit', ["'mnsit'"]),
    ('--config.data.name=folder', ['data.path']),
])
def test_bad_config_values(tmp_path, override, fragments):
  assert_one_line_error(run_cli(TINY + ['--workdir', str(tmp_path), override]), *fragments)


def test_missing_and_empty_image_folders(tmp_path):
  missing = run_cli(TINY + ['--workdir', str(tmp_path / 'w1'), '--config.data.name=folder',
                            f'--config.data.path={tmp_path / "nope"}'])
  assert_one_line_error(missing, 'nope')
  (tmp_path / 'empty').mkdir()
  empty = run_cli(TINY + ['--workdir', str(tmp_path / 'w2'), '--config.data.name=folder',
                          f'--config.data.path={tmp_path / "empty"}'])
  assert_one_line_error(empty, 'empty')


def test_batch_not_divisible_by_device_count(tmp_path):
  result = run_cli(TINY + ['--workdir', str(tmp_path), '--config.batch_size=6'],
                   env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4'})
  assert_one_line_error(result, 'batch_size=6', '4 devices')


def test_bad_variant_and_missing_config_file(tmp_path):
  assert_one_line_error(run_cli(['train.py', '--config', 'configs/msggan_digits.py:huge',
                                 '--workdir', str(tmp_path)]), 'huge')
  assert_one_line_error(run_cli(['train.py', '--config', 'configs/nope.py',
                                 '--workdir', str(tmp_path)]), 'nope.py')


def test_incompatible_checkpoint_from_the_cli(tmp_path):
  assert run_cli(TINY + ['--workdir', str(tmp_path), '--config.num_steps=10']).returncode == 0
  result = run_cli(TINY + ['--workdir', str(tmp_path), '--config.model.latent_size=8'])
  assert_one_line_error(result, 'model.latent_size: 16 -> 8', 'new --workdir')


def test_eval_redraws_sample_sheets_from_a_checkpoint(tmp_path):
  assert run_cli(TINY + ['--workdir', str(tmp_path), '--config.num_steps=10']).returncode == 0
  result = run_cli(['eval.py', '--workdir', str(tmp_path), '--figures', '--sheet_samples', '9'])
  assert result.returncode == 0, result.stderr
  assert (tmp_path / 'figures' / 'all_scales' / 'step_00000010.png').exists()
  assert (tmp_path / 'figures' / '8x8' / 'step_00000010.png').exists()
  assert_one_line_error(run_cli(['eval.py', '--workdir', str(tmp_path / 'nothing')]),
                        'no training run')
  assert_one_line_error(run_cli(['eval.py', '--workdir', str(tmp_path), '--step', '7',
                                 '--figures']),
                        'available: [10]')
