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


def test_a_pair_classifier_reads_both_domains_as_the_gan_does():
  """classifier.on_pair: the union of domain a and domain b of the pair, the same images the
  coupled GAN trains on (halves, the transform, the pad), each with its digit's label."""
  from configs import classifier_pair  # pylint: disable=g-import-not-at-top
  from gans.data import pairs  # pylint: disable=g-import-not-at-top
  config = classifier_pair.get_config('digits2negative')
  union = classifier.sources(config)
  digits = sources.DigitsSource(28, 1, split=config.data.split)
  half = len(digits) // 2
  assert len(union) == len(digits)
  everything = union.load_all()
  raw = digits.load_all()
  np.testing.assert_array_equal(everything['label'], digits.labels())
  padded = lambda x: np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  np.testing.assert_array_equal(everything['image'][:half], padded(raw[:half]))
  np.testing.assert_array_equal(everything['image'][half:], padded(255 - raw[half:]))
  picked = union[np.array([half + 3, 1, half])]  # rows from both parts, in the asked order
  np.testing.assert_array_equal(picked['image'], everything['image'][[half + 3, 1, half]])
  edges = classifier_pair.get_config('digits2edge')
  assert classifier.sources(edges).images.fingerprint() != union.images.fingerprint()
  assert isinstance(union.images, pairs.Union)


@pytest.fixture(scope='module')
def pair_trained(tmp_path_factory):
  from configs import classifier_pair  # pylint: disable=g-import-not-at-top
  config = classifier_pair.get_config('digits2negative')
  config.model.update(width=8, feature_size=64)
  config.num_steps = 300
  config.log_every = config.checkpoint_every = config.sample_every = 300
  workdir = str(tmp_path_factory.mktemp('pair_classifier'))
  trainer.train(config, workdir)
  return config, workdir


def test_only_the_pair_classifier_knows_the_negatives(trained, pair_trained):
  """The judge of a digits/negatives pair must classify both domains (spec §4 #20): trained on
  the union it does; trained on the digits alone it does not."""
  config, workdir = pair_trained
  held_out = _split(config, config.classifier.eval_split)
  images = data.LabelledSource(data.make_source(held_out, 28, 1)).load_all()
  negatives = np.pad(255 - images['image'], ((0, 0), (2, 2), (2, 2), (0, 0)))
  both = classifier.load_frozen(workdir).predict_all(negatives)
  digits_only = classifier.load_frozen(trained[1]).predict_all(negatives)
  assert np.mean(both == images['label']) > 0.8
  assert np.mean(digits_only == images['label']) < 0.5


def test_a_multilabel_classifier_learns_attribute_vectors():
  """classifier.attributes: labels are the attributes' 0/1 vectors, the loss is the mean
  sigmoid binary cross-entropy (checked against numpy), and the frozen classifier gives one
  independent sigmoid probability per attribute."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from gans.data import pairs  # pylint: disable=g-import-not-at-top
  config = classifier.defaults()
  config.data.update(name='celeb_a', split='train')
  config.classifier.update(attributes='Smiling, Male', eval_split='', max_shift=0)
  config.model.update(resolution=16, image_channels=3, num_classes=2, width=4, feature_size=8)
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    source = classifier.sources(config)
    expected = pairs.attribute_values(config.data, ['Smiling', 'Male'])
    batch = source[np.arange(6)]
  np.testing.assert_array_equal(batch['label'], expected.astype(np.float32))
  assert classifier.example_spec(config)['label'].shape == (2,)
  state = classifier.init_state(config, jax.random.PRNGKey(0))
  _, metrics = classifier.train_step(config, state, batch)
  frozen = classifier.Frozen(config, state.params)
  x = batch['image'].astype(np.float32) / 127.5 - 1
  logits = np.asarray(frozen.logits(x), np.float64)
  y = batch['label']
  bce = np.mean(np.logaddexp(0, logits) - y * logits)
  np.testing.assert_allclose(metrics['loss'], bce, rtol=1e-5)
  np.testing.assert_allclose(frozen.probabilities(x), 1 / (1 + np.exp(-logits)), rtol=1e-5)
  np.testing.assert_array_equal(frozen.predict_all(batch['image']), (logits > 0).astype(float))
  config.model.num_classes = 3
  with pytest.raises(UserError, match='model.num_classes=2'):
    classifier.validate(config)


def test_single_label_probabilities_are_a_softmax(trained):
  frozen = classifier.load_frozen(trained[1])
  x = np.linspace(-1, 1, 2 * 16 * 16).reshape(2, 16, 16, 1).astype(np.float32)
  logits = np.asarray(frozen.logits(x), np.float64)
  softmax = np.exp(logits - logits.max(-1, keepdims=True))
  np.testing.assert_allclose(frozen.probabilities(x), softmax / softmax.sum(-1, keepdims=True),
                             rtol=1e-5, atol=1e-7)
