"""The image room: the public API (``colorizer.Colorizer``) and the image path it runs.

``colorizer`` (Colorizer: load a model on a backend; ``colorize_planes`` is the image path, top to bottom),
``pipeline`` (the batch runner: decoding, the network, the colour kernel and encoding of several photos
overlapped on worker threads, bounded memory) and ``jobs`` (what a worker does with one photo: a file to a file
for the command line, an input to a result for ``Colorizer.colorize_many``),
``geometry`` (full resolution <-> the padded network grid), ``imageio`` (decoding any mode to L, atomic
writing), ``hints`` (user colour hints -> the model's hint input), ``color`` (the colour science:
sRGB <-> CIELAB in numpy, the reference) and ``fastcolor`` (the same maths in a small C kernel through cffi,
for full-resolution pixels).

May import: runtime.backends (through its registry), runtime.model, runtime.cache, runtime.errors.
Never the video or command-line rooms.
"""
