"""Every shipped config validates, and its tiny variant trains through the real data path."""
import glob
import importlib
import os

import pytest
import tensorflow_datasets as tfds

from conftest import ROOT
from gans import config as config_lib
from gans import trainer
from gans.errors import UserError

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py')))


def load(name, variant=''):
  return importlib.import_module(f'configs.{name}').get_config(variant)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_documents_its_command(name):
  config_lib.validate(load(name))
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'python train.py --config configs/{name}.py' in doc
  with pytest.raises(UserError, match='unknown config variant'):
    load(name, 'nope')


@pytest.mark.parametrize('name', CONFIGS)
def test_tiny_variant_trains(tmp_path, name):
  config = load(name, 'tiny')
  config.num_steps = 10
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    state = trainer.train(config, str(tmp_path))
  assert int(state.step) == 10
