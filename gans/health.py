"""Per-network health numbers logged with the losses, as big_vision logs them.

They are what the trainer checks before a checkpoint: a parameter norm is finite only when
every parameter is, so a step that blows the weights up (a learning rate of 1e39, say) stops
the run before its state is saved, even while the losses, computed before the update, look fine.
"""
import jax
import jax.numpy as jnp
import optax


def norms(name, grads, old_params, new_params):
  """{name_grad_norm, name_param_norm, name_update_norm}: global L2 norms of one network's step."""
  update = jax.tree.map(jnp.subtract, new_params, old_params)
  return {f'{name}_grad_norm': optax.global_norm(grads),
          f'{name}_param_norm': optax.global_norm(new_params),
          f'{name}_update_norm': optax.global_norm(update)}
