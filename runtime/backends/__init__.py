"""The backends room: engines that map L -> ab on padded float32 batches, and nothing else.

``base`` (the Backend interface, hint feeding), ``registry`` (names -> lazily imported classes, the
``auto`` fallback order), one module per engine (``onnxruntime``, ``torch_cpu``, ``torch_cuda``,
``tensorrt``), each importing its heavy library only when used, and ``gpu/`` (the CUDA binding,
TensorRT engine building, caching and profiles) beside the two backends that use it.

May import: runtime.model, runtime.cache, runtime.errors. Never the image, video or command-line rooms.
"""
