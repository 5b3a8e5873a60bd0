"""The one exception type that means "the user asked for something impossible".

The CLIs catch it and print its message on one line with exit code 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the user's input: bad config value, missing data, incompatible checkpoint."""
