"""The command-line room: ``colorize-gan`` (``main``: images and folders, ``info``, and the ``video``
subcommand, which lives in runtime.video.cli) and ``batch`` (expanding inputs into jobs: folders, globs,
output names, hint sidecars, shards).

May import every other room; nothing imports it.
"""
