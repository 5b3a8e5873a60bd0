"""The classifier method: labelled streams through the engine, held-out accuracy, frozen use."""
import json

import jax
import numpy as np
import pytest

from gans import data, trainer
from gans.data import sources
from gans.errors import UserError
from gans.methods import classifier


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  from configs import classifier_digits
  config = classifier_digits.get_config()
  config.model.width = 16
  config.num_steps = 300
  config.log_every = config.checkpoint_every = config.sample_every = 150
  workdir = str(tmp_path_factory.mktemp('classifier'))
  trainer.train(config, workdir)
  return config, workdir


def test_learns_the_held_out_digits(trained):
  config, workdir = trained
  records = [json.loads(line) for line in open(f'{workdir}/metrics.jsonl')]
  scores = [r['eval_accuracy'] for r in records if 'eval_accuracy' in r]
  assert len(scores) == 2 and scores[-1] > 0.9  # 10 classes: chance is 0.1


def test_frozen_classifier_takes_any_size_and_channels(trained):
  config, workdir = trained
  frozen = classifier.load_frozen(workdir)
  split = _split(config, config.classifier.eval_split)
  held_out = data.LabelledSource(data.make_source(split, 32, 3))
  held_out = held_out.load_all()
  x = held_out['image'][:64].astype(np.float32) / 127.5 - 1  # 32x32 RGB: resized, made grey
  logits = jax.jit(frozen.logits)(x)
  features = jax.jit(frozen.features)(x)
  assert logits.shape == (64, 10) and features.shape == (64, config.model.feature_size)
  assert np.mean(np.argmax(logits, -1) == held_out['label'][:64]) > 0.8


def _split(config, split):
  d = config.data.copy_and_resolve_references()
  d.split = split
  return d


def test_load_frozen_refuses_a_gan_run(tmp_path, tiny):
  trainer.train(tiny(num_steps=5, steps_per_dispatch=5, log_every=5, sample_every=5,
                     checkpoint_every=5), str(tmp_path))
  with pytest.raises(UserError, match='not a classifier'):
    classifier.load_frozen(str(tmp_path))


def test_digit_splits_are_disjoint_slices_with_labels():
  train = sources.DigitsSource(8, 1, split='train[:80%]')
  held = sources.DigitsSource(8, 1, split='train[80%:]')
  everything = sources.DigitsSource(8, 1)
  assert len(train) + len(held) == len(everything) == 1797
  np.testing.assert_array_equal(np.concatenate([train.labels(), held.labels()]),
                                everything.labels())
  np.testing.assert_array_equal(held[np.arange(3)],
                                everything[np.arange(len(train), len(train) + 3)])
  with pytest.raises(UserError, match='one split'):
    sources.DigitsSource(8, 1, split='test')


def test_folder_labels_come_from_class_folders(tmp_path):
  from PIL import Image
  for cls in ('cat', 'ant'):
    (tmp_path / cls).mkdir()
    for i in range(2):
      Image.new('L', (4, 4), 40 * i).save(tmp_path / cls / f'{i}.png')
  folder = data.FolderSource(str(tmp_path), 4, 1)
  assert list(folder.labels()) == [0, 0, 1, 1]  # sorted: ant, cat


def test_the_step_logs_its_learning_rate(trained):
  config, workdir = trained
  records = [json.loads(line) for line in open(f'{workdir}/metrics.jsonl')]
  logged = [r['lr'] for r in records if 'lr' in r]
  assert logged and all(v == pytest.approx(config.optim.lr, rel=1e-6) for v in logged)


def test_named_feature_taps_keep_the_saved_parameter_names():
  """The layers keep the names Flax gave them automatically (Conv_0 .. Conv_5, Dense_0/1), so
  classifiers saved before they were named load; features=True returns each conv's ReLU output
  and the penultimate features by name."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gans.models import classifier as models  # pylint: disable=g-import-not-at-top
  model = models.Classifier(width=4, feature_size=8)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 16, 1), minval=-1, maxval=1)
  params = model.init(jax.random.PRNGKey(0), x)['params']
  assert sorted(params) == [f'Conv_{i}' for i in range(6)] + ['Dense_0', 'Dense_1']
  logits, taps = model.apply({'params': params}, x, features=True)
  assert tuple(taps) == models.CONV_TAPS + ('fc',) and taps['fc'].shape == (2, 8)
  np.testing.assert_array_equal(logits, model.apply({'params': params}, x))
  _, inter = model.apply({'params': params}, x, capture_intermediates=True,
                         mutable=['intermediates'])
  for i, name in enumerate(models.CONV_TAPS):
    conv = inter['intermediates'][f'Conv_{i}']['__call__'][0]
    np.testing.assert_array_equal(taps[name], jnp.maximum(conv, 0))
