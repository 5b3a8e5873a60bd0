"""The one training loop every method runs in: restore, compile, run, log, sample, checkpoint.

The host only enqueues work between log intervals: K steps run per dispatch (one fused
lax.scan on accelerators, see Dispatch), the state's buffers are donated, and metrics stay on
the devices until a log, sample or checkpoint boundary needs them. Checkpoints are taken only
after the metrics since the previous one were seen to be finite, so a diverged run never
overwrites a good checkpoint.
"""
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gans import checkpoint, figures, logs, parallel
from gans import workdir as workdir_lib
from gans import config as config_lib
from gans import evaluation, methods
from gans.data import feeding
from gans.errors import UserError
from gans.models import frozen as frozen_models


class Diverged(UserError):
  """A loss, gradient or parameter became NaN or Inf; its own exit code, for job scripts."""
  exit_code = 3


class Interrupted(UserError):
  """A second SIGINT/SIGTERM: the run stops at once, as an interrupted shell command does."""
  exit_code = 130


class _StopRequest:
  """SIGTERM/SIGINT set a flag; the loop checkpoints at a dispatch boundary and exits.

  On a pod the signal may reach one host only (a preemption notice, a Ctrl-C on one worker),
  and a host that stops alone leaves the others waiting in the next step's collectives. So
  with several processes the flags are combined by a tiny all-reduce on the devices, enqueued
  after each dispatch and read after the next one: the host never waits for it, and every
  process reads the same answer at the same dispatch.
  """

  def __init__(self, mesh):
    self.requested = False
    self._previous = {}
    self._mesh = mesh
    self._in_flight = None

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread (e.g. called from a notebook worker)
        pass
    return self

  def _handle(self, signum, frame):
    if self.requested:  # a second signal: the user really wants out now
      signal.default_int_handler(signum, frame)
    logging.warning('signal %d: saving a checkpoint and stopping', signum)
    self.requested = True

  def agreed(self) -> bool:
    """Whether every process stops after the dispatch just enqueued. Call once per dispatch."""
    if jax.process_count() == 1:
      return self.requested
    sharding = parallel.batch_sharding(self._mesh)
    flags = np.full((len(self._mesh.local_devices),), self.requested)
    previous, self._in_flight = self._in_flight, _any(
        jax.make_array_from_process_local_data(sharding, flags))
    return previous is not None and bool(parallel.to_host(previous))

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


_any = jax.jit(jnp.any)


class Dispatch:
  """Runs K training steps per call: state, metrics = dispatch(state, tables, xs).

  `tables`, `xs` and `gather` come from a feeding.Feeder: gather(tables, xs_t) is step t's batch.
  On accelerators the K steps are one compiled lax.scan with the state donated. On XLA:CPU a
  while loop around convolutions runs far slower than the same steps unrolled (measured in
  docs/performance.md), so there the K steps are K calls of one compiled step. Either way there
  is one executable per distinct K, compiled on first use and timed.

  A method that declares frozen networks (Method.frozen) gets their params as the step's fourth
  argument: put on every device once, passed to each call and never donated (they are not in
  the state, so never in a checkpoint). `frozen` is that {name: params} when the caller has
  loaded them already (the trainer, which recorded their digests); None loads them here.
  """

  def __init__(self, method, config: ml_collections.ConfigDict, mesh, gather, fused=None,
               frozen=None):
    self.fused = jax.default_backend() != 'cpu' if fused is None else fused
    self.mesh = mesh
    self.compile_s = 0.0
    self.executables = {}
    if method.frozen:
      if frozen is None:
        frozen = frozen_models.params(method.frozen(config))
      self.frozen = parallel.replicate(mesh, jax.device_get(frozen))
      step = functools.partial(method.train_step, config)
    else:
      self.frozen = None
      step = lambda state, batch, _: method.train_step(config, state, batch)
    out = parallel.replicated(mesh)

    def scan(state, frozen, tables, xs):
      return jax.lax.scan(lambda s, x: step(s, gather(tables, x), frozen), state, xs)

    def single(state, frozen, tables, xs, t):
      x = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=False), xs)
      return step(state, gather(tables, x), frozen)

    self._fn = jax.jit(scan if self.fused else single, donate_argnums=0, out_shardings=out)

  def _executable(self, *args):
    key = _steps(args[3]) if self.fused else 1
    if key not in self.executables:
      t0 = time.perf_counter()
      with jax.set_mesh(self.mesh):  # what parallel.shard_batch constrains to
        self.executables[key] = self._fn.lower(*args).compile()
      self.compile_s += time.perf_counter() - t0
    return self.executables[key]

  def __call__(self, state, tables, xs):
    """(state, metrics) after k steps (xs' leading axis); metrics maps names to [k] device
    arrays or, step by step, to a list of k scalars."""
    args = (self.frozen, tables, xs)
    if self.fused:
      return self._executable(state, *args)(state, *args)
    per_step = []
    for t in range(_steps(xs)):
      t = jnp.int32(t)
      state, metrics = self._executable(state, *args, t)(state, *args, t)
      per_step.append(metrics)
    return state, {k: [m[k] for m in per_step] for k in per_step[0]}


def _steps(xs):
  return jax.tree.leaves(xs)[0].shape[0]


def train(config: ml_collections.ConfigDict, workdir, fresh=False):
  """Train config into workdir, resuming from its latest checkpoint. Returns the final state.

  fresh=True starts over at step 0 in a workdir whose run once completed checkpoints that are
  all gone (deleted, or damaged and set aside): the one case where starting over would
  otherwise erase a run's history without being asked.
  """
  config_lib.validate(config)
  mesh = parallel.make_mesh()
  parallel.check_batch(config.batch_size, mesh)
  method = methods.get(config.method)
  # Frozen networks: loaded once, their digests recorded in (a copy of) the config, which the
  # checkpoints and config.json then carry; a checkpoint with other digests is refused.
  nets = method.frozen(config) if method.frozen else {}
  config = frozen_models.record_digests(config, nets)
  feeder = feeding.Feeder(method.sources(config), method.example_spec(config), config, mesh)
  workdir = workdir_lib.prepare(workdir)  # data and config errors come before any write
  with _holding(workdir):
    ckpt = checkpoint.Checkpointer(workdir / 'checkpoints', config, keep=config.keep_checkpoints,
                                   record=workdir / 'last_checkpoint.json', frozen=nets)
    try:
      state = _start(method, config, mesh, workdir, ckpt, fresh)
      return _loop(method, config, mesh, workdir, ckpt, feeder, state,
                   frozen_models.params(nets) if method.frozen else None)
    except BaseException:
      ckpt.close(raising=False)
      raise


@contextlib.contextmanager
def _holding(workdir):
  """The workdir's lock, taken by process 0 for every process (they agree before going on)."""
  lock, error = workdir_lib.Lock(workdir), None
  if jax.process_index() == 0:
    try:
      lock.acquire()
    except UserError as e:
      error = e
  if not parallel.everyone(error is None):
    raise error or UserError(f'process 0 could not take {workdir}; see its error')
  try:
    yield
  finally:
    if jax.process_index() == 0:
      lock.release()


def _say(text):
  if jax.process_index() == 0:
    print(text, file=sys.stderr, flush=True)


def _start(method, config: ml_collections.ConfigDict, mesh, workdir, ckpt, fresh):
  """The state to continue from: the newest checkpoint that restores, or a new one.

  A workdir whose run once completed a checkpoint (ckpt.record) but has none that restores
  is refused: starting over would erase its history without being asked. A run killed before
  its first checkpoint completed has nothing to lose and starts again.
  """
  state = ckpt.restore(checkpoint.abstract_state(method, config, mesh))
  if state is not None:
    step = int(parallel.to_host(state.step))
    if fresh:
      raise UserError(f'--fresh starts over only in a workdir without checkpoints, and '
                      f'{ckpt.directory} holds step {step}: use a new --workdir, or delete that '
                      'folder first')
    _say(f'resumed from step {step} ({ckpt.directory / str(step)})')
  elif ckpt.record.exists() and not fresh:
    saved = json.loads(ckpt.record.read_text())['step']
    raise UserError(f'{workdir} holds a run that saved checkpoints up to step {saved}, but none '
                    f'is left in {ckpt.directory}; use a new --workdir to keep that run, or '
                    'pass --fresh to start over here (its metrics are erased)')
  else:
    ckpt.record.unlink(missing_ok=True)
    init = jax.jit(functools.partial(method.init_state, config),
                   out_shardings=parallel.replicated(mesh))
    state = init(jax.random.PRNGKey(config.seed))
  if jax.process_index() == 0:
    step = int(parallel.to_host(state.step))
    text = config.to_json_best_effort(indent=2)
    (workdir / 'config.json').write_text(text)
    (workdir / 'config_history').mkdir(exist_ok=True)
    (workdir / 'config_history' / f'{step:08d}.json').write_text(text)
  return state


def _loop(method, config: ml_collections.ConfigDict, mesh, workdir, ckpt, feeder, state,
          frozen=None):
  lead = jax.process_index() == 0
  replicated = parallel.replicated(mesh)
  step = int(parallel.to_host(state.step))
  total, k_max = config.num_steps, config.steps_per_dispatch
  if step >= total:
    _say(f'already at step {step} of {total}: nothing to do (--config.num_steps=N to go on)')
    ckpt.close()
    return state
  evaluating = method.makes_samples and config.get('eval', {}).get('every')
  evaluator = evaluation.DuringTraining(config, str(workdir)) if evaluating else None
  dispatch = Dispatch(method, config, mesh, feeder.gather, frozen=frozen)
  if method.makes_samples:
    generate = jax.jit(functools.partial(method.generate, config), out_shardings=replicated)
    latents = jax.jit(functools.partial(method.sample_latents, config, n=config.num_samples),
                      out_shardings=replicated)(jax.random.PRNGKey(config.seed + 1))
  writer = logs.MetricWriter(workdir, enabled=lead, resume_step=step, config=config)
  writer.hparams(metrics=method.progress, step=step)
  progress = logs.Progress(config.num_steps, config.batch_size, enabled=lead)

  def save_samples(step):
    if method.makes_samples:
      pngs = {}  # {sheet: PNG bytes}, handed to the writer rather than read back
      figures.write_samples(method, config, state, latents, os.path.join(workdir, 'samples'),
                            f'step_{step:08d}', generate, pngs=pngs)
      writer.images(step, pngs)

  pending, pending_start = [], step  # dispatch metrics not yet seen by the host
  t_start = t_last = time.time()
  last_logged = step
  stopped = False
  try:
    with _StopRequest(mesh) as stop:
      while step < total:
        k = min(k_max, total - step)
        tables, xs = feeder.get(step, k)
        compile_before = dispatch.compile_s
        state, metrics = dispatch(state, tables, xs)
        t_last += dispatch.compile_s - compile_before  # compile time is not training time
        pending.append(metrics)
        step += k
        ckpt.check()  # a failed asynchronous save stops the run here
        stopped = stop.agreed()  # read once: a signal after this is seen next dispatch
        boundary = step == total or stopped
        if step % config.log_every == 0 or step % config.checkpoint_every == 0 or boundary:
          host = parallel.to_host(pending)
          bad = logs.first_nonfinite(host, pending_start + 1)
          if bad:
            last = ckpt.latest_step()
            raise Diverged(f'{" and ".join(bad[1])} became NaN/Inf at step {bad[0]}; stopped '
                           f'without saving; the last good checkpoint is '
                           f'{"step " + str(last) if last is not None else "none"} in '
                           f'{ckpt.directory}')
          now = time.time()
          rate = (step - last_logged) * config.batch_size / max(now - t_last, 1e-9)
          scalars = logs.summarize(host, method.logged_at_step)
          writer.write(step, {**scalars, 'images_per_s': rate, 's_per_kimg': 1000 / rate,
                              'elapsed_s': now - t_start, 'compile_s': dispatch.compile_s})
          progress.update(step, rate, {n: scalars[n] for n in method.progress if n in scalars})
          pending, pending_start, last_logged, t_last = [], step, step, now
        if evaluator and step % config.eval.every == 0:
          writer.write(step, evaluator(state))
        if step % config.sample_every == 0 or boundary:
          save_samples(step)
        if step % config.checkpoint_every == 0 or boundary:
          ckpt.save(step, state)
          if method.checkpoint_scores:  # held-out scores of every saved model
            writer.write(step, method.checkpoint_scores(config, state))
        if stopped:
          break
        if not pending:
          t_last = time.time()  # sampling and saving are not training time
  except KeyboardInterrupt:  # a second signal: out at once
    last = ckpt.latest_step()
    raise Interrupted(f'interrupted again at step {step}: stopped without saving; the last '
                      f'checkpoint is {"step " + str(last) if last is not None else "none"} in '
                      f'{ckpt.directory}') from None
  finally:
    writer.close()
    progress.close()
  ckpt.close()  # waits for the last save: what is reported below is on disk
  where = ckpt.directory / str(step)
  if stopped:
    _say(f'stopped by a signal at step {step}; saved {where}; rerun the same command to resume')
  else:
    _say(f'done: step {step}; checkpoint {where}; metrics {workdir / "metrics.jsonl"}; '
         f'samples {workdir / "samples"}')
  return state
