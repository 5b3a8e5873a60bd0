# %% [markdown]
# # Quickstart: train, export, load, sample
#
# A notebook as a script (`# %%` cells run in VS Code, Jupytext or `python docs/quickstart.py`):
# train MSG-GAN's tiny digits config for a few seconds, export its generator, load it with
# `gans.load_generator` and plot samples. For real samples train the default config
# (`python train.py`, minutes on a CPU). Settings: QUICKSTART_DIR (default: a temporary
# folder) and QUICKSTART_STEPS (default 200).

# %%
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

import gans  # noqa: E402
from configs import msggan_digits  # noqa: E402
from gans import export, trainer  # noqa: E402

out = os.environ.get('QUICKSTART_DIR') or tempfile.mkdtemp(prefix='gans-quickstart-')
workdir = os.path.join(out, 'run')

# %% Train: configs/msggan_digits.py:tiny is the default job at its smallest size.
config = msggan_digits.get_config('tiny')
config.num_steps = int(os.environ.get('QUICKSTART_STEPS', 200))
trainer.train(config, workdir)

# %% Export the EMA generator alone (the same as: python sample.py --workdir RUN --export G).
path = export.export(workdir, os.path.join(out, 'generator.msgpack'))

# %% Load it anywhere the code is installed: no checkpoint, no training state.
g = gans.load_generator(path)
z = g.sample_latents(jax.random.PRNGKey(0), 16)
images = g(z)  # [16, R, R, C] in [-1, 1]
print(g, images.shape)

# %% Plot.
fig, axes = plt.subplots(2, 8, figsize=(8, 2))
for ax, image in zip(axes.flat, images):
  ax.imshow((image[..., 0] + 1) / 2, cmap='gray', vmin=0, vmax=1)
  ax.axis('off')
fig.savefig(os.path.join(out, 'samples.png'), dpi=100)
plt.close(fig)
print(os.path.join(out, 'samples.png'))
