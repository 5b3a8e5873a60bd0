"""What train.py and eval.py share: flag parsing and user errors as one line with exit code 2."""
import sys

from absl import app, flags, logging

from gans.errors import UserError


def _parse(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    # config_flags reports an unknown --config.key or a bad value here, as does absl.
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)
  except (UserError, ValueError, KeyError, AttributeError, TypeError, SyntaxError, OSError) as e:
    # Loading the config file runs it: a missing file or a bad variant ends up here.
    print(f'error: could not load the config: {e}', file=sys.stderr)
    sys.exit(2)


def run(main):
  """app.run(main) with user mistakes reported in one line and exit code 2."""
  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(getattr(e, 'exit_code', 2))
  def parse(argv):
    parsed = _parse(argv)
    if not any(a.startswith(('--verbosity', '-v')) for a in argv):
      logging.set_verbosity(logging.WARNING)  # orbax and absl narrate every save at INFO
    return parsed

  app.run(guarded, flags_parser=parse)
