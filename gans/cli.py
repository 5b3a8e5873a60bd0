"""What train.py and eval.py share: flag parsing and user errors as one line with exit code 2."""
import os
import sys

from absl import app, flags, logging

from gans.errors import UserError


def _root_cause(e):
  while e.__cause__ is not None or e.__context__ is not None:
    e = e.__cause__ or e.__context__
  return e


def _parse(argv, config_flag):
  try:
    parsed = flags.FLAGS(argv)
    if config_flag is not None and config_flag.value is not None:
      config_flag.value.keys()  # config_flags loads the file lazily; fail here, in one line
    return parsed
  except flags.Error as e:
    # config_flags reports an unknown --config.key or a bad value here, as does absl.
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)
  except (UserError, ValueError, KeyError, AttributeError, TypeError, SyntaxError, OSError) as e:
    # Loading the config file runs it: a missing file or a bad variant ends up here.
    cause = _root_cause(e)
    message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    if isinstance(cause, (KeyError, AttributeError)):  # an override naming no field
      overrides = [a.split('=')[0] for a in argv if a.startswith('--config.')]
      message = (f'unknown config key {message.strip(chr(34))} in {" ".join(overrides)}; '
                 'see the config file for the fields that exist')
    print(f'error: could not load the config: {message.strip()}', file=sys.stderr)
    sys.exit(2)


def enable_compilation_cache():
  """Keep compiled steps on disk so a restart (or a resume) skips most of the compilation."""
  import jax
  path = os.environ.get('GANS_COMPILATION_CACHE',
                        os.path.join(os.path.expanduser('~'), '.cache', 'gans', 'jax'))
  if path:
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def run(main, config_flag=None, default_config=None):
  """app.run(main) with user mistakes reported in one line and exit code 2.

  default_config is used when the command line names no --config. It is inserted into argv
  rather than set as the flag's default because config_flags applies --config.x=y overrides to
  a default at import time, where a typo would escape as a traceback.
  """
  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(getattr(e, 'exit_code', 2))
    except KeyboardInterrupt:  # Ctrl-C before the trainer's own handler is installed
      print('error: interrupted before anything was saved', file=sys.stderr)
      sys.exit(130)
  def parse(argv):
    if default_config and not any(a == '--config' or a.startswith('--config=') for a in argv):
      argv = [argv[0], f'--config={default_config}', *argv[1:]]
    parsed = _parse(argv, config_flag)
    if not any(a.startswith(('--verbosity', '-v')) for a in argv):
      logging.set_verbosity(logging.WARNING)  # orbax and absl narrate every save at INFO
    return parsed

  app.run(guarded, flags_parser=parse)
