"""Where sample.py's images go: a folder of PNGs, one .npz, or one sheet, written off the
devices' critical path.

A writer takes uint8 NHWC batches keyed 'images' (or 'a' and 'b', a coupled method's two
domains of the same latents) with their index in the run. `Background` feeds it from a thread
through a bounded queue, so PNG encoding and disk or object-store latency overlap the next
batches' generation, and a slow disk stalls generation only once the queue is full (memory
stays bounded). Every path goes through etils.epath: a gs:// OUT works as a local one.
"""
import io
import math
import queue
import threading

import numpy as np
from etils import epath

from gans import figures
from gans.errors import UserError

SUFFIXES = {'': 'folder', '.npz': 'npz', '.png': 'png'}
WALK_SUFFIXES = {'.png': 'png', '.gif': 'gif'}


def output_kind(out: str, interpolate: bool = False) -> str:
  """'folder', 'npz', 'png' or 'gif' from OUT's name; a UserError for anything else."""
  suffix = '' if out.endswith('/') else epath.Path(out).suffix.lower()
  kinds = WALK_SUFFIXES if interpolate else SUFFIXES
  if suffix not in kinds:
    allowed = ('.png or .gif' if interpolate else 'a folder (no suffix), .npz or .png')
    raise UserError(f'--out {out}: unknown suffix {suffix or "(a folder)"!r}; '
                    f'{"--interpolate writes" if interpolate else "use"} {allowed}')
  return kinds[suffix]


def sheet(arrays: dict, ncol=None, gap=4):
  """One uint8 sheet of {key: NHWC}: a grid per key (enlarged, figures.enlarge), side by side
  with `gap` black columns between them, so a coupled model's a and b of the same z sit at the
  same place."""
  grids = [figures.grid(figures.enlarge(a), ncol) for a in arrays.values()]
  spacer = np.zeros((grids[0].shape[0], gap, grids[0].shape[2]), np.uint8)
  return np.concatenate([x for g in grids for x in (g, spacer)][:-1], axis=1)


class FolderWriter:
  """OUT/<index>.png, zero-padded so names sort; coupled: OUT/a/ and OUT/b/."""

  def __init__(self, out, num, keys):
    self.root, self.width = epath.Path(out), max(6, len(str(num - 1)))
    self.dirs = {k: self.root if k == 'images' else self.root / k for k in keys}
    for d in self.dirs.values():
      d.mkdir(parents=True, exist_ok=True)

  def write(self, start, arrays):
    for key, images in arrays.items():
      for i, image in enumerate(images):
        png = figures.png_bytes(figures.to_pil(image))
        (self.dirs[key] / f'{start + i:0{self.width}d}.png').write_bytes(png)

  def close(self):
    return str(self.root)


class ArrayWriter:
  """Collects every image in memory, then writes OUT once: an .npz (uncompressed, written from
  a bytes buffer so gs:// works) or, as_sheet, one PNG grid."""

  def __init__(self, out, num, keys, as_sheet=False):
    self.out, self.num, self.keys, self.as_sheet = epath.Path(out), num, keys, as_sheet
    self.arrays = {}

  def write(self, start, arrays):
    for key, images in arrays.items():
      if key not in self.arrays:
        self.arrays[key] = np.zeros((self.num,) + images.shape[1:], np.uint8)
      self.arrays[key][start:start + len(images)] = images

  def close(self):
    self.out.parent.mkdir(parents=True, exist_ok=True)
    if self.as_sheet:
      return figures.save_png(figures.to_pil(sheet(self.arrays)), self.out)
    buffer = io.BytesIO()
    np.savez(buffer, **self.arrays)
    self.out.write_bytes(buffer.getvalue())
    return str(self.out)


def make_writer(kind, out, num, keys):
  if kind == 'folder':
    return FolderWriter(out, num, keys)
  return ArrayWriter(out, num, keys, as_sheet=kind == 'png')


class Background:
  """writer.write on a thread, fed through a queue of at most `depth` batches; close() waits
  for the last one, closes the writer and re-raises the thread's error, if any."""

  def __init__(self, writer, depth=8):
    self.writer, self.queue, self.error = writer, queue.Queue(depth), None
    self.thread = threading.Thread(target=self._run, name='sample-writer', daemon=True)
    self.thread.start()

  def _run(self):
    while (item := self.queue.get()) is not None:
      if self.error is None:
        try:
          self.writer.write(*item)
        except Exception as e:  # pylint: disable=broad-except: reported by put() or close()
          self.error = e

  def _check(self):
    if self.error is not None:
      raise UserError(f'could not write the samples: {self.error}') from self.error

  def put(self, start, arrays):
    self._check()
    self.queue.put((start, arrays))

  def close(self):
    self.queue.put(None)
    self.thread.join()
    self._check()
    return self.writer.close()


def write_walk(kind, out, arrays: dict, rows, steps, frame_ms=120):
  """Interpolation strips: {key: [rows * steps, H, W, C]} as one sheet (a row per pair of
  endpoints, `steps` frames left to right) or an animated GIF (frame t: every row's image t in
  a grid; forth and back, looping; GIF keeps 256 colours, exact for greyscale)."""
  out = epath.Path(out)
  if kind == 'png':
    return figures.save_png(figures.to_pil(sheet(arrays, ncol=steps)), out)
  walks = {k: v.reshape((rows, steps) + v.shape[1:]) for k, v in arrays.items()}
  ncol = int(math.ceil(math.sqrt(rows)))
  frames = [figures.to_pil(sheet({k: w[:, t] for k, w in walks.items()}, ncol))
            for t in range(steps)]
  frames += frames[-2:0:-1]
  buffer = io.BytesIO()
  frames[0].save(buffer, format='GIF', save_all=True, append_images=frames[1:],
                 duration=frame_ms, loop=0)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_bytes(buffer.getvalue())
  return str(out)
