"""What several methods share: the GAN state's first fields and the apply that updates a
model's non-parameter variables."""
from typing import Any

import flax


@flax.struct.dataclass
class GanState:
  """The fields every GAN's TrainState starts with; a method subclasses it with its own.
  Checkpoints name state leaves by field (g_params/...), so the order here changes nothing."""
  step: Any
  key: Any  # base key: step s uses fold_in(key, s), so a resume replays the same draws
  g_params: Any
  d_params: Any


def apply_with_stats(model, params, stats, *args, collection, **kwargs):
  """model.apply on {'params': params, **stats} with `collection` (BatchNorm's batch_stats,
  spectral norm's vectors) mutable: (output, stats with the updated collection)."""
  out, new = model.apply({'params': params, **stats}, *args, mutable=[collection], **kwargs)
  return out, {**stats, **new}
