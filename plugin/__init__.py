"""The GIMP 3 plug-in side of colorize-gan: the plug-in itself (colorize_gan/), the GIMP-free bridge to the
worker process, the worker, and the installer (``colorize-gan-gimp``). Nothing else in the project imports it."""
