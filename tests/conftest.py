import os
import subprocess
import tempfile
import sys

import pytest

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# The suite is compile-bound: LLVM's lowest optimisation level compiles the tiny steps faster,
# for slower code the tests barely run. Every process the tests start gets it
# too (run_cli), so runs that are compared are compiled alike. Never set outside the tests.
FAST_COMPILE = '--xla_backend_optimization_level=0'


def with_fast_compile(flags):
  return flags if FAST_COMPILE in flags else f'{flags} {FAST_COMPILE}'.strip()


os.environ['XLA_FLAGS'] = with_fast_compile(os.environ.get('XLA_FLAGS', ''))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One compilation cache for the test process and the CLIs it starts: most tests compile the
# same tiny steps, and a cache hit is the same executable, so results do not change.
os.environ.setdefault('GANS_COMPILATION_CACHE',
                      os.path.join(tempfile.gettempdir(), f'gans-test-jax-cache-{os.getuid()}'))
# matplotlib's font cache, for the same reason, outside the folders the tests watch.
os.environ.setdefault('MPLCONFIGDIR',
                      os.path.join(tempfile.gettempdir(), f'gans-test-mpl-{os.getuid()}'))


def pytest_configure(config):
  del config
  from gans import cli
  cli.enable_compilation_cache()


def tiny_config(**overrides):
  """configs/msggan_digits.py:tiny with dotted overrides, e.g. tiny_config(**{'model.width': 8})."""
  from configs import msggan_digits
  config = msggan_digits.get_config('tiny')
  config.update_from_flattened_dict(overrides)
  return config


def run_cli(args, env=None, timeout=300):
  """Run a CLI of the repo in a fresh process; returns CompletedProcess with text output."""
  full_env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **(env or {})}
  full_env['XLA_FLAGS'] = with_fast_compile(full_env.get('XLA_FLAGS', ''))
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture
def tiny():
  return tiny_config


def load_script(name):
  """scripts/<name>.py as a module, for tests of its functions."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'scripts', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
