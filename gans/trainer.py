"""The one training loop every method runs in: restore, compile, run, log, sample, checkpoint.

The host only enqueues work between log intervals: K steps are fused into one compiled
lax.scan per dispatch, the state's buffers are donated, and metrics stay on the devices until a
log, sample or checkpoint boundary needs them. Checkpoints are taken only after the metrics since
the previous one were seen to be finite, so a diverged run never overwrites a good checkpoint.
"""
import functools
import json
import logging
import os
import signal
import time

import jax

from gans import checkpoint, figures, logs, parallel
from gans import config as config_lib
from gans import data, methods
from gans.data import feeding
from gans.errors import UserError


class Diverged(UserError):
  """A loss became NaN or Inf."""


class _StopRequest:
  """SIGTERM/SIGINT set a flag; the loop checkpoints at the next dispatch boundary and exits."""

  def __init__(self):
    self.requested = False
    self._previous = {}

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

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def make_dispatch(method, config, mesh):
  """jit(lax.scan(train_step)) over K steps; K is the leading axis of xs."""
  replicated = parallel.replicated(mesh)

  def run(state, table, xs):
    def body(state, x):
      return method.train_step(config, state, x if table is None else table[x])
    return jax.lax.scan(body, state, xs)

  return jax.jit(run, donate_argnums=0, out_shardings=replicated)


def abstract_state(method, config, mesh):
  replicated = parallel.replicated(mesh)
  shapes = jax.eval_shape(functools.partial(method.init_state, config), jax.random.PRNGKey(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)


def train(config, workdir):
  """Train config into workdir, resuming from its latest checkpoint. Returns the final state."""
  config_lib.validate(config)
  mesh = parallel.make_mesh()
  parallel.check_batch(config.batch_size, mesh)
  method = methods.get(config.method)
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'), config,
                                 keep=config.keep_checkpoints)
  r, _, c = method.image_shape(config)
  source = data.make_source(config.data, r, c)
  feeder = feeding.Feeder(source, config, mesh)

  replicated = parallel.replicated(mesh)
  if ckpt.latest_step() is not None:
    state = ckpt.restore(abstract_state(method, config, mesh))
  else:
    init = jax.jit(functools.partial(method.init_state, config), out_shardings=replicated)
    state = init(jax.random.PRNGKey(config.seed))
  step = int(parallel.to_host(state.step))
  if lead:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))

  dispatch = make_dispatch(method, config, mesh)
  generate = jax.jit(functools.partial(method.generate, config), out_shardings=replicated)
  latents = jax.jit(functools.partial(method.sample_latents, config, n=config.num_samples),
                    out_shardings=replicated)(jax.random.PRNGKey(config.seed + 1))
  writer = logs.MetricWriter(workdir, enabled=lead)
  progress = logs.Progress(config.num_steps, config.batch_size, enabled=lead)
  total, k_max = config.num_steps, config.steps_per_dispatch

  def save_samples(step):
    outputs = parallel.to_host(generate(state, latents))
    if lead:
      for name, images, ncol in method.sheets(config, outputs):
        figures.save_grid(images, os.path.join(workdir, 'samples', name, f'step_{step:08d}.png'),
                          ncol)

  pending, pending_start = [], step  # dispatch metrics not yet seen by the host
  t_start = t_last = time.time()
  last_logged = step
  compiled, compile_s = {}, 0.0  # one executable per dispatch length (the last may be shorter)
  try:
    with _StopRequest() as stop:
      while step < total and not stop.requested:
        k = min(k_max, total - step)
        table, xs = feeder.get(step, k)
        if k not in compiled:
          t0 = time.time()
          compiled[k] = dispatch.lower(state, table, xs).compile()
          compile_s += time.time() - t0
          t_last += time.time() - t0
        state, metrics = compiled[k](state, table, xs)
        pending.append(metrics)
        step += k
        boundary = step == total or stop.requested
        if step % config.log_every == 0 or step % config.checkpoint_every == 0 or boundary:
          host = parallel.to_host(pending)
          bad = logs.first_nonfinite(host, pending_start + 1)
          if bad:
            last = ckpt.latest_step()
            raise Diverged(f'{" and ".join(bad[1])} became NaN/Inf at step {bad[0]}; stopped '
                           f'without saving; the last good checkpoint is '
                           f'{"step " + str(last) if last is not None else "none"} in {workdir}')
          now = time.time()
          rate = (step - last_logged) * config.batch_size / max(now - t_last, 1e-9)
          scalars = logs.summarize(host)
          writer.write(step, {**scalars, 'images_per_s': rate, 's_per_kimg': 1000 / rate,
                              'elapsed_s': now - t_start, 'compile_s': compile_s})
          progress.update(step, rate, {k: scalars[k] for k in ('d_loss', 'g_loss') if k in scalars})
          pending, pending_start, last_logged, t_last = [], step, step, now
        if step % config.sample_every == 0 or boundary:
          save_samples(step)
        if step % config.checkpoint_every == 0 or boundary:
          ckpt.save(step, state)
        t_last = time.time() if pending == [] else t_last  # exclude sampling/saving from rates
  finally:
    ckpt.close()
    writer.close()
    progress.close()
  return state
