"""sample.py --export and gans.load_generator: the generator alone, bit for bit, and the
quickstart notebook that uses them."""
import functools
import os
import runpy

import numpy as np
import pytest

from conftest import ROOT
from test_sample_cli import runs  # noqa: F401  (the module fixture: three saved runs)


@pytest.mark.parametrize('name', ['msggan', 'began', 'cogan'])
def test_an_exported_generator_makes_the_checkpoints_images_bit_for_bit(runs, name, tmp_path):  # noqa: F811
  import flax.serialization
  import jax
  import gans
  from gans import export
  workdir, method, config, state = runs[name]
  path = export.export(workdir, str(tmp_path / 'g.msgpack'))
  saved = flax.serialization.msgpack_restore(open(path, 'rb').read())
  assert (saved['format'], saved['version'], saved['method'], saved['step']) == (
      'gans-generator', 1, name, 3)
  assert 'params' in saved['variables'] and 'd_params' not in str(saved['variables'].keys())
  g = gans.load_generator(path)
  assert g.config.to_dict() == config.to_dict() and g.step == 3
  z = g.sample_latents(jax.random.PRNGKey(9), 5)
  assert z.shape == (5, g.latent_size)
  reference = jax.jit(functools.partial(method.generate, config))(state, z)
  got = g(z)
  if name == 'msggan':  # the EMA generator, full resolution by default, or every scale
    np.testing.assert_array_equal(got, reference[-1])
    for a, b in zip(g(z, all_scales=True), reference, strict=True):
      np.testing.assert_array_equal(a, b)
  elif name == 'began':
    np.testing.assert_array_equal(got, reference['samples'])
  else:  # both domains of the same z
    np.testing.assert_array_equal(got[0], reference[0])
    np.testing.assert_array_equal(got[1], reference[1])


def test_a_file_that_is_not_an_export_is_refused_in_one_line(tmp_path):
  import gans
  from gans.errors import UserError
  bad = tmp_path / 'g.msgpack'
  bad.write_bytes(b'not msgpack at all')
  with pytest.raises(UserError, match='not a generator exported by sample.py'):
    gans.load_generator(str(bad))
  with pytest.raises(UserError, match='does not exist'):
    gans.load_generator(str(tmp_path / 'missing.msgpack'))


def test_the_quickstart_runs(tmp_path, monkeypatch):
  monkeypatch.setenv('QUICKSTART_DIR', str(tmp_path))
  monkeypatch.setenv('QUICKSTART_STEPS', '2')
  runpy.run_path(os.path.join(ROOT, 'docs', 'quickstart.py'), run_name='__main__')
  assert (tmp_path / 'generator.msgpack').exists()
  from PIL import Image
  with Image.open(tmp_path / 'samples.png') as im:
    assert im.size[0] > 100
