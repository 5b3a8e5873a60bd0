"""Frozen networks (SCoGAN's SL classifier, PL's feature net) are arguments of the step, never
part of the state: checkpoints hold only what is trained, the nets are identified by digests
recorded in the config, and a resume with other weights is refused (issue 14)."""
import functools
import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import checkpoint, parallel, trainer
from gans.data import feeding
from gans.errors import UserError
from gans.methods import coupled
from gans.methods.coupled import step as coupled_step
from gans.models import frozen as frozen_models
from gans.models import vgg
from test_train import assert_same_state, read_metrics


@flax.struct.dataclass
class OldTrainState(coupled_step.TrainState):
  """The coupled state as checkpoints before issue 14 saved it: the frozen nets inside."""
  frozen: Any


TRAINED = tuple(coupled_step.TrainState.__dataclass_fields__)


def _to_old(state, frozen):
  return OldTrainState(**{f: getattr(state, f) for f in TRAINED}, frozen=frozen)


def _to_new(old):
  return coupled_step.TrainState(**{f: getattr(old, f) for f in TRAINED})


def _copy(tree):
  """Fresh buffers: the trainer's Dispatch donates the state it is given."""
  return jax.tree.map(jnp.array, tree)


@pytest.fixture(scope='module')
def classifiers(tmp_path_factory):
  """Two tiny trained classifier workdirs (other seeds: other weights), SL's frozen files."""
  from configs import classifier_digits
  workdirs = []
  for seed in (0, 1):
    config = classifier_digits.get_config('tiny')
    config.update_from_flattened_dict({'seed': seed, 'num_steps': 10, 'checkpoint_every': 10})
    workdir = str(tmp_path_factory.mktemp(f'classifier{seed}'))
    trainer.train(config, workdir)
    workdirs.append(workdir)
  return workdirs


def scogan(classifier, **overrides):
  """Tiny unshared SCoGAN on the digits with SL (the classifier workdir) and PL (the small
  random VGG19 stand-in) on."""
  from configs import cogan_digits_negative
  config = cogan_digits_negative.get_config('unshared_tiny')
  config.method = 'scogan'
  config.update_from_flattened_dict({
      'reg.sl': 10.0, 'reg.sl_classifier': classifier, 'reg.pl_content': 1.0,
      'reg.pl_style': 1.0, 'reg.pl_net': 'untrained_vgg19', 'eval.num_pairs': 0,
      'steps_per_dispatch': 5, 'checkpoint_every': 5, **overrides})
  return config


def _nbytes(tree):
  return sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))


def test_checkpoints_hold_no_frozen_arrays_and_the_config_their_digests(tmp_path, classifiers):
  config = scogan(classifiers[0], num_steps=5)
  state = trainer.train(config, str(tmp_path))
  assert not hasattr(state, 'frozen')
  nets = coupled_step.frozen_nets(config)
  assert set(nets) == {'sl', 'pl'}
  reader = checkpoint.Checkpointer(tmp_path / 'checkpoints', config)
  try:
    saved = reader.manager.item_metadata(5)['state']
    saved_config = reader.manager.restore(5, args=checkpoint.ocp.args.Composite(
        config=checkpoint.ocp.args.JsonRestore())).config
  finally:
    reader.close()
  assert set(saved) == set(TRAINED) and 'frozen' not in saved
  saved_bytes = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                    for shape, dtype in checkpoint._structure(saved).values())
  assert saved_bytes == _nbytes(state)  # the trained state's arrays, nothing else
  # The array data files (orbax's d/ folders; the ~150 kB of metadata beside them varies with
  # how the asynchronous writes were split) have room for the state, not for the nets too.
  data = sum(f.stat().st_size for f in (tmp_path / 'checkpoints' / '5').rglob('d/*'))
  assert data < _nbytes(state) + _nbytes(frozen_models.params(nets)) / 2
  digests = {'sl_classifier_digest': frozen_models.array_digest(nets['sl'].params),
             'pl_net_digest': frozen_models.array_digest(nets['pl'].params)}
  for recorded in (saved_config['reg'],
                   json.loads((tmp_path / 'config.json').read_text())['reg']):
    assert {k: recorded[k] for k in digests} == digests


def test_resume_with_the_same_frozen_files_equals_the_uninterrupted_run(tmp_path, classifiers):
  uninterrupted = trainer.train(scogan(classifiers[0], num_steps=10), str(tmp_path / 'a'))
  trainer.train(scogan(classifiers[0], num_steps=5), str(tmp_path / 'b'))
  resumed = trainer.train(scogan(classifiers[0], num_steps=10), str(tmp_path / 'b'))
  assert int(resumed.step) == 10
  assert_same_state(uninterrupted, resumed)
  a, b = read_metrics(tmp_path / 'a'), read_metrics(tmp_path / 'b')
  assert [m['sl'] for m in a if 'sl' in m] == [m['sl'] for m in b if 'sl' in m]


def test_resume_with_another_frozen_file_is_refused_in_one_line(tmp_path, classifiers):
  first, other = classifiers
  workdir = str(tmp_path)
  trainer.train(scogan(first, num_steps=5), workdir)
  digest = lambda w: frozen_models.array_digest(frozen_models.classifier(w)[1])[:10]
  with pytest.raises(UserError) as refused:
    trainer.train(scogan(other, num_steps=10), workdir)
  message = str(refused.value)
  assert '\n' not in message
  assert f'reg.sl_classifier={other!r}' in message and 'step 5' in message
  assert f'{digest(first)} saved, {digest(other)} now' in message
  assert 'back at the file' in message and 'new --workdir' in message
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['5']  # nothing trained on
  # A digest pinned in the config is checked at every start, before anything is written.
  pinned = scogan(other, num_steps=10, **{'reg.sl_classifier_digest':
                                          frozen_models.array_digest(
                                              frozen_models.classifier(first)[1])})
  with pytest.raises(UserError, match=rf'reg.sl_classifier=.*{digest(other)}, but '
                                      rf'reg.sl_classifier_digest pins {digest(first)}'):
    trainer.train(pinned, str(tmp_path / 'new'))
  assert not (tmp_path / 'new').exists()
  # The original file resumes.
  assert int(trainer.train(scogan(first, num_steps=10), workdir).step) == 10


def _vgg_file(path, seed):
  params = vgg.VGG19(width_divisor=16).init(jax.random.PRNGKey(seed),
                                            np.zeros((1, 32, 32, 3)))['params']
  np.savez(path, **{f'{layer}/{k}': np.asarray(v) for layer, p in params.items()
                    for k, v in p.items()})
  return str(path)


def test_another_vgg19_file_is_refused_at_restore_and_when_pinned(tmp_path):
  """PL's VGG19 weights file: a checkpoint recorded with one file's digest refuses another,
  naming reg.pl_vgg_weights (checked at the Checkpointer: full-width VGG19 is too slow to
  train with here); a pinned digest is refused before the run starts."""
  from configs import cogan_digits_negative
  files = [_vgg_file(tmp_path / f'vgg{i}.npz', i) for i in (0, 1)]

  def config_for(path):
    config = cogan_digits_negative.get_config('unshared_tiny')
    config.method = 'scogan'
    config.update_from_flattened_dict({'reg.pl_content': 1.0, 'reg.pl_net': 'vgg19',
                                       'reg.pl_vgg_weights': path, 'eval.num_pairs': 0})
    nets = coupled.SCOGAN.frozen(config)
    return frozen_models.record_digests(config, nets), nets

  config, nets = config_for(files[0])
  state = jax.jit(functools.partial(coupled.init_state, config))(jax.random.PRNGKey(0))
  saver = checkpoint.Checkpointer(tmp_path / 'checkpoints', config, frozen=nets)
  saver.save(5, state)
  saver.close()
  abstract = checkpoint.abstract_state(coupled.SCOGAN, config, parallel.make_mesh())
  same = checkpoint.Checkpointer(tmp_path / 'checkpoints', config_for(files[0])[0], frozen=nets)
  assert_same_state(same.restore(abstract), state)
  same.close()
  other_config, other_nets = config_for(files[1])
  reader = checkpoint.Checkpointer(tmp_path / 'checkpoints', other_config, frozen=other_nets)
  with pytest.raises(UserError, match=r'^reg.pl_vgg_weights=.*vgg1.npz.* is not the frozen '
                                      r'network .*\(reg.pl_net_digest: \w{10} saved, \w{10} now'):
    reader.restore(abstract)
  reader.close()
  pinned, _ = config_for(files[1])
  pinned.reg.pl_net_digest = config.reg.pl_net_digest
  with pytest.raises(UserError, match=r'^reg.pl_vgg_weights=.*vgg1.npz.* but '
                                      r'reg.pl_net_digest pins'):
    trainer.train(pinned, str(tmp_path / 'run'))


def test_an_old_checkpoint_with_frozen_nets_in_its_state_restores_without_them(
    tmp_path, classifiers):
  """A checkpoint saved before issue 14 (the nets in the state, no digests in its config)
  resumes: the frozen subtree is left on disk, the run goes on as an uninterrupted one, and the
  digests are recorded from then on."""
  config = scogan(classifiers[0], num_steps=5)
  trainer.train(config, str(tmp_path / 'new'))
  _, state = checkpoint.load(str(tmp_path / 'new'))
  nets = frozen_models.params(coupled_step.frozen_nets(config))
  old = _to_old(state, jax.device_put(nets))
  saver = checkpoint.Checkpointer(tmp_path / 'old' / 'checkpoints', config)
  for key in ('sl_classifier_digest', 'pl_net_digest'):
    del saver.config['reg'][key]
  saver.save(5, old)
  saver.close()
  reader = checkpoint.Checkpointer(tmp_path / 'old' / 'checkpoints', config)
  assert 'frozen' in reader.manager.item_metadata(5)['state']  # the old structure
  reader.close()
  (tmp_path / 'old' / 'config.json').write_text(json.dumps(saver.config))
  _, restored = checkpoint.load(str(tmp_path / 'old'), step=5)  # evaluation reads it too
  assert not hasattr(restored, 'frozen')
  assert_same_state(restored, state)

  resumed = trainer.train(scogan(classifiers[0], num_steps=10), str(tmp_path / 'old'))
  uninterrupted = trainer.train(scogan(classifiers[0], num_steps=10), str(tmp_path / 'whole'))
  assert_same_state(uninterrupted, resumed)
  recorded = json.loads((tmp_path / 'old' / 'config.json').read_text())['reg']
  assert recorded['sl_classifier_digest'] == frozen_models.array_digest(nets['sl'])


def test_the_step_with_frozen_arguments_computes_what_the_state_borne_nets_did(classifiers):
  """The step's numbers do not change: with the nets as an argument (what the trainer's
  Dispatch passes) the state and metrics equal, bitwise, those of the same step with the nets
  carried inside the state as before, and of the step with them as compile-time constants;
  and the step uses the nets it is given (other weights, other SL and PL values)."""
  config = scogan(classifiers[0])
  state = jax.jit(functools.partial(coupled.init_state, config))(jax.random.PRNGKey(0))
  nets = frozen_models.params(coupled_step.frozen_nets(config))
  mesh = parallel.make_mesh()
  feeder = feeding.Feeder(coupled.sources(config), coupled.example_spec(config), config, mesh)
  tables, xs = feeder.get(0, 1)
  batch = feeder.gather(tables, jax.tree.map(lambda a: a[0], xs))

  def old_step(old, batch):  # the state as it was: frozen nets inside, handed to the step
    new, metrics = coupled.train_step(config, _to_new(old), batch, old.frozen)
    return _to_old(new, old.frozen), metrics

  before, before_metrics = jax.jit(old_step)(_to_old(state, jax.device_put(nets)), batch)
  step = jax.jit(functools.partial(coupled.train_step, config))
  after, metrics = step(state, batch, nets)
  assert_same_state(after, _to_new(before))
  assert_same_state(metrics, before_metrics)
  constants, constant_metrics = jax.jit(functools.partial(coupled.train_step, config))(
      state, batch)
  assert_same_state(constants, after)
  assert_same_state(constant_metrics, metrics)

  dispatch = trainer.Dispatch(coupled.SCOGAN, config, mesh, feeder.gather, frozen=nets)
  dispatched, dispatched_metrics = dispatch(_copy(state), tables, xs)
  assert_same_state(dispatched, after)
  assert {k: float(v[0]) for k, v in dispatched_metrics.items()} == {
      k: float(v) for k, v in metrics.items()}

  fused = trainer.Dispatch(coupled.SCOGAN, config, mesh, feeder.gather, fused=True, frozen=nets)
  scanned, scanned_metrics = fused(_copy(state), tables, xs)  # the accelerators' lax.scan
  assert int(scanned.step) == 1  # (one Adam step moves a parameter by +-lr whatever |grad|)
  for name in ('d_loss', 'g_loss', 'sl', 'pl_style', 'pl_content'):
    assert np.isclose(float(scanned_metrics[name][0]), float(metrics[name]), rtol=1e-4), name

  other = {'sl': frozen_models.classifier(classifiers[1])[1],
           'pl': jax.tree.map(lambda a: a * 1.5, nets['pl'])}
  changed = trainer.Dispatch(coupled.SCOGAN, config, mesh, feeder.gather, frozen=other)(
      _copy(state), tables, xs)[1]
  for name in ('sl', 'pl_style', 'pl_content'):
    assert float(changed[name][0]) != float(metrics[name]), name
