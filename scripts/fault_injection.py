"""Fault injection: kill -9 a tiny training run at random moments, resume it each time, and check
that it ends bitwise equal to a run that was never interrupted.

What it proves: a run killed without warning (no SIGTERM handler, no final save), during
start-up, mid-training or in the middle of an asynchronous checkpoint save, and started again
with the same command, takes over its lock, resumes from the newest finished checkpoint, and
computes exactly what it would have computed anyway: every array of the final training state
(parameters, optimizer states, EMA generator, step, RNG key) equals the uninterrupted run's bit
for bit, and metrics.jsonl holds every logged step once, with the same values. The first kill
lands in the run's first save, when there is no checkpoint yet to fall back on.

  python scripts/fault_injection.py                 # 20 kills, seed 0: a few minutes on 2 cores
  python scripts/fault_injection.py --kills 50 --seed 3 --workdir /tmp/fi

The runs are configs/msggan_digits.py:tiny with a checkpoint, log line and sample sheet every 5
steps, on the CPU, with their own compilation cache in the workdir. They run a copy of the code
taken at the start (WORKDIR/code), so that an edit made meanwhile cannot put two versions of it
into one comparison. Each start's output is in WORKDIR/killed/start_NN.log. Exit code 0 only
when every kill was recovered and both comparisons hold.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TIMING = {'images_per_s', 's_per_kimg', 'elapsed_s', 'compile_s'}  # differ from run to run
PROGRESS = re.compile(r'^(\d+)/\d+ ', re.M)
TMP = re.compile(r'^(\d+)\.orbax-checkpoint-tmp')


def freeze_code(code):
  for name in ('gans', 'configs'):
    shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns('__pycache__'))
  shutil.copy2(ROOT / 'train.py', code)
  return code


def train_command(code, workdir, steps):
  every = ('checkpoint_every', 'log_every', 'sample_every', 'steps_per_dispatch')
  return [sys.executable, str(code / 'train.py'),
          f'--config={code / "configs" / "msggan_digits.py"}:tiny', f'--workdir={workdir}',
          f'--config.num_steps={steps}', *(f'--config.{k}=5' for k in every)]


def checkpoints(workdir):
  """(finished steps, steps being saved) in workdir/checkpoints."""
  try:
    names = os.listdir(Path(workdir) / 'checkpoints')
  except FileNotFoundError:
    names = []
  return ({int(n) for n in names if n.isdigit()},
          {int(m.group(1)) for m in map(TMP.match, names) if m})


class Start:
  """One train.py process, its output going to a file that is read while it runs."""

  def __init__(self, command, log, env):
    self.log, self.t0 = Path(log), time.monotonic()
    with open(log, 'w') as f:
      self.proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env)

  def text(self):
    return self.log.read_text(errors='replace')

  def logged_steps(self):
    return [int(s) for s in PROGRESS.findall(self.text())]

  def wait_for(self, condition, poll=0.01):
    """True once condition() holds, False if the process ended first."""
    while not condition():
      if self.proc.poll() is not None:
        return condition()
      time.sleep(poll)
    return True

  def kill(self):
    """SIGKILL now; (seconds since the start, False) if it had already ended."""
    at = time.monotonic() - self.t0
    if self.proc.poll() is not None:
      return at, False
    os.kill(self.proc.pid, signal.SIGKILL)
    self.proc.wait()
    return at, True

  def outcome(self):
    """(where it started: a step, 0 for a fresh start, None if killed before it said; the first
    line that shows a failure, or None)."""
    rc = self.proc.wait()
    text = self.text()
    resumed = re.search(r'resumed from step (\d+)', text)
    start = int(resumed.group(1)) if resumed else (0 if PROGRESS.search(text) else None)
    bad = [l for l in text.splitlines() if l.startswith(('error:', 'Traceback')) or 'damaged' in l]
    if not bad and rc not in (0, -signal.SIGKILL):
      bad = [f'exit code {rc}']
    return start, (bad[0] if bad else None)


def kill_at_random(start, workdir, mode, rng, startup_s, span_s):
  """Kill `start` at a random moment of kind `mode`: (seconds since it started, a phrase saying
  what it was doing, the seconds it took to its first log line if that was seen)."""
  first_log_s = None
  if mode == 'start-up':
    time.sleep(rng.uniform(0.1, 1.0) * startup_s)
  elif mode != 'first save':
    start.wait_for(start.logged_steps)
    first_log_s = time.monotonic() - start.t0
    time.sleep(rng.uniform(0, 2 if mode == 'training' else 1) * span_s)
  if mode.endswith('save'):  # at once or up to 80 ms into the save (one takes ~130 ms here)
    start.wait_for(lambda: checkpoints(workdir)[1], poll=0.001)
    time.sleep(rng.uniform(0, 0.08))
  logged = start.logged_steps()  # before its first log line a tmp folder is a killed one's
  saving = checkpoints(workdir)[1] if logged else set()
  at, killed = start.kill()
  if not killed:
    what = 'after it had finished'
  elif saving:
    unfinished = saving & checkpoints(workdir)[1]
    what = (f'during save of step {max(unfinished)}' if unfinished else
            f'as the save of step {max(saving)} finished')
  else:
    what = f'mid-training, step {logged[-1]} logged' if logged else 'during start-up'
  return at, what, first_log_s


def compare_states(code, reference, killed):
  """Paths of the state's leaves that differ (bitwise) between the two workdirs' final states."""
  os.environ['JAX_PLATFORMS'] = 'cpu'
  sys.path.insert(0, str(code))
  import jax
  from gans import checkpoint

  def leaves(workdir):
    _, state = checkpoint.load(workdir)
    def host(x):
      if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
      return np.asarray(x)
    return {jax.tree_util.keystr(p): host(x)
            for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}

  a, b = leaves(reference), leaves(killed)
  diffs = sorted(set(a) ^ set(b))
  diffs += [k for k in sorted(set(a) & set(b)) if a[k].dtype != b[k].dtype
            or not np.array_equal(a[k], b[k])]
  return len(a), diffs


def compare_metrics(reference, killed):
  """Problems with the killed run's metrics.jsonl: steps not logged exactly once, values (other
  than timings) that differ from the reference run's."""
  def records(workdir):
    lines = (Path(workdir) / 'metrics.jsonl').read_text().splitlines()
    return [json.loads(l) for l in lines if l.strip()]
  ref, got = records(reference), records(killed)
  problems = []
  steps = [r['step'] for r in got]
  repeated = sorted({s for s in steps if steps.count(s) > 1})
  missing = sorted({r['step'] for r in ref} - set(steps))
  extra = sorted(set(steps) - {r['step'] for r in ref})
  for name, values in (('logged twice', repeated), ('missing', missing), ('extra', extra)):
    if values:
      problems.append(f'steps {name}: {values}')
  by_step = {r['step']: r for r in got}
  for r in ref:
    other = by_step.get(r['step'], {})
    keys = [k for k in r if k not in TIMING and k in other and other[k] != r[k]]
    if keys:
      values = ', '.join(f'{k} {other[k]!r} != {r[k]!r}' for k in keys)
      problems.append(f'step {r["step"]}: {values}')
  return len(ref), problems


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--workdir', help='an empty or new folder (default: a new temporary one)')
  parser.add_argument('--steps', type=int, default=400, help='training steps, a multiple of 5')
  args = parser.parse_args()
  t0 = time.monotonic()
  root = Path(args.workdir or tempfile.mkdtemp(prefix='fault_injection_'))
  if root.exists() and any(root.iterdir()):
    sys.exit(f'error: --workdir {root} is not empty; pass a new folder')
  reference, killed = root / 'reference', root / 'killed'
  killed.mkdir(parents=True)
  code = freeze_code(root / 'code')
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'GANS_COMPILATION_CACHE': str(root / 'jax_cache')}
  rng = random.Random(args.seed)
  print(f'workdir {root}; {args.steps} steps, {args.kills} kills, seed {args.seed}', flush=True)

  run = Start(train_command(code, reference, args.steps), root / 'reference.log', env)
  run.wait_for(run.logged_steps)
  startup_s = time.monotonic() - run.t0
  _, failure = run.outcome()
  if failure or f'done: step {args.steps}' not in run.text():
    sys.exit(f'the uninterrupted run failed: {failure}; see {run.log}')
  history = [json.loads(l) for l in (reference / 'metrics.jsonl').read_text().splitlines()]
  steps_per_s = ((history[-1]['step'] - history[0]['step'])
                 / (history[-1]['elapsed_s'] - history[0]['elapsed_s']))
  span_s = args.steps / args.kills / steps_per_s  # training time per kill, were they even
  print(f'uninterrupted run: {time.monotonic() - run.t0:.1f} s ({startup_s:.1f} s to its first '
        f'log line, then {steps_per_s:.0f} steps/s)', flush=True)

  modes = ['start-up'] * (args.kills // 5) + ['training'] * (args.kills * 2 // 5)
  modes += ['save'] * (args.kills - 1 - len(modes))
  rng.shuffle(modes)
  modes.insert(0, 'first save')
  pending, recovered, takeovers, failed = None, 0, 0, None
  for i in range(1, args.kills + 2):  # the last start runs to the end
    run = Start(train_command(code, killed, args.steps), killed / f'start_{i:02d}.log', env)
    if i <= args.kills:
      at, what, first_log_s = kill_at_random(run, killed, modes[i - 1], rng, startup_s, span_s)
      startup_s = first_log_s or startup_s  # a resume's start-up, not the first one's compile
    start, failure = run.outcome()
    takeovers += 'taking over' in run.text()
    if pending:  # this start is the one that shows whether the previous kill was recovered
      k, at_k, what_k, newest = pending
      ok = not failure and start in (None, newest or 0)
      if failure:
        result = f'FAILED: {failure} (see {run.log})'
      elif start is None:
        result = f'next start killed before it restored (newest checkpoint: {newest or "none"})'
      elif not ok:
        result = f'WRONG: resumed from step {start}, the newest checkpoint is {newest or "none"}'
      else:
        result = f'resumed from step {start}' if start else 'started afresh (no checkpoint yet)'
      recovered += ok
      print(f'kill {k:2d}/{args.kills} at {at_k:5.2f} s ({what_k}): {result}', flush=True)
    if failure:
      failed = failure
      break
    if i <= args.kills:
      pending = (i, at, what, max(checkpoints(killed)[0], default=None))
  if failed or f'done: step {args.steps}' not in run.text():
    print(f'stopped: {"that start failed" if failed else "the last start did not finish"}; '
          f'see {run.log}')
    print(f'total {time.monotonic() - t0:.0f} s')
    return 1

  n_leaves, state_diffs = compare_states(code, reference, killed)
  n_steps, metric_problems = compare_metrics(reference, killed)
  print(f'lock taken over from a killed process {takeovers} times')
  print(f'metrics.jsonl: each of the {n_steps} logged steps once, with the uninterrupted run\'s '
        f'values: {"yes" if not metric_problems else "no"}')
  for problem in metric_problems[:10]:
    print(f'  {problem}')
  print(f'{recovered}/{args.kills} kills recovered; final state bitwise equal to the '
        f'uninterrupted run: {"yes" if not state_diffs else "no"} ({n_leaves} arrays)')
  for path in state_diffs[:10]:
    print(f'  differs: {path}')
  print(f'total {time.monotonic() - t0:.0f} s')
  return 0 if recovered == args.kills and not state_diffs and not metric_problems else 1


if __name__ == '__main__':
  sys.exit(main())
