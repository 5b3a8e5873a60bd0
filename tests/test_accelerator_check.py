"""scripts/accelerator_check.sh --tiny on the CPU: every part of issue 12's one-call check runs
and its report holds what the issue asks for. What the numbers are on an accelerator is for the
report to say, not for this test."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, load_script, with_fast_compile

SECTIONS = ['environment', 'sweep', 'fused_vs_single', 'bf16_vs_f32', 'digits_run',
            'digits_resume', 'digits_eval']


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """One tiny run through the wrapper, called from outside the repository with relative paths,
  as a person would: (that folder, its stdout, the report)."""
  tmp = tmp_path_factory.mktemp('accelerator_check')
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHON': sys.executable,
         'XLA_FLAGS': with_fast_compile(os.environ.get('XLA_FLAGS', ''))}
  result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'accelerator_check.sh'),
                           '--tiny', '--out', 'report.json', '--workdir', 'runs'],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr[-4000:]
  with open(tmp / 'report.json') as f:
    return tmp, result.stdout, json.load(f)


def test_every_part_runs_and_the_wrapper_says_where_the_report_is(run):
  tmp, stdout, report = run
  assert stdout.strip().splitlines()[-1].endswith(f'report {tmp / "report.json"}')
  assert report['mode'] == 'tiny' and report['complete'] and report['errors'] == 0
  assert list(report['sections']) == SECTIONS
  assert report['workdir'] == str(tmp / 'runs')
  assert not list(load_script('accelerator_check').errors(report['sections']))
  assert all(s['wall_s'] > 0 for s in report['sections'].values())
  environment = report['sections']['environment']
  assert environment['device_count'] >= 1 and environment['backend'] == 'cpu'
  assert all(environment['versions'][n] for n in ('jax', 'jaxlib', 'flax', 'optax',
                                                  'orbax-checkpoint'))


def test_sweep_rows_carry_their_targets(run):
  rows = run[2]['sections']['sweep']['rows']
  assert [(r['config'], r['target_images_per_s']) for r in rows] == [
      ('configs/msggan_cifar10.py:tiny', 3250), ('configs/msggan_celeba128.py:tiny', 1030),
      ('configs/msggan_flowers256.py:tiny', 460)]
  for r in rows:
    assert r['dtype'] == 'bfloat16' and isinstance(r['met_target'], bool)
    assert r['images_per_s'] > 0 and r['s_per_kimg'] > 0 and r['compile_s'] > 0
    assert r['peak_memory_mb'] > 0 and r['gflop_per_image_necessary'] > 0


def test_fused_against_single_and_bf16_against_f32(run):
  sections = run[2]['sections']
  fused, dtypes = sections['fused_vs_single'], sections['bf16_vs_f32']
  for section, names in ((fused, ('fused', 'single')), (dtypes, ('bf16', 'f32'))):
    assert all(section[n]['images_per_s'] > 0 and section[n]['compile_s'] > 0 for n in names)
    assert section[f'{names[0]}_over_{names[1]}'] == pytest.approx(
        section[names[0]]['images_per_s'] / section[names[1]]['images_per_s'], rel=1e-2)
  # The bf16 figure of both comparisons is the sweep's depth-4 row, measured once.
  assert dtypes['bf16'] == {k: sections['sweep']['rows'][0][k] for k in dtypes['bf16']}


def test_digits_run_resume_and_evaluation(run):
  sections = run[2]['sections']
  digits = sections['digits_run']
  assert digits['steps'] == 20 and digits['images_per_s_logged_median'] > 0
  resume = sections['digits_resume']
  assert resume['split_at'] == 10 and resume['resumed_vs_uninterrupted']['step'] == 20
  assert resume['resume_bitwise'] and resume['deterministic_to_split']  # XLA:CPU is deterministic
  assert resume['max_abs_diff'] == 0.0 and resume['verdict'].startswith('bitwise')
  evaluation = sections['digits_eval']
  assert evaluation['step'] == 20 and 0 <= evaluation['classifier']['eval_accuracy'] <= 1
  assert evaluation['metrics']['fid_classifier']['value'] >= 0
  assert evaluation['metrics']['kid_classifier']['num_fake'] == 100
  assert set(evaluation['method_scores']) >= {'d_loss_logged', 'g_loss_logged'}


def test_a_missing_package_stops_it_in_one_line_naming_the_wheels(monkeypatch, capsys):
  check = load_script('accelerator_check')
  assert check.missing_packages(('json', 'no_such_module_here')) == ['no-such-module-here']
  monkeypatch.setattr(check, 'missing_packages', lambda: ['ml-collections', 'tensorboardX'])
  assert check.main(['--tiny']) == 2
  err = capsys.readouterr().err.strip()
  assert err.count('\n') == 0 and err.startswith('error: ')
  assert 'ml-collections==' in err and 'tensorboardX==' in err and '.whl' in err
