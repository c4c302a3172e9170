"""GPU plumbing for the TensorRT and torch-CUDA backends: ``cuda`` (a cffi binding to libcudart),
``engine_profile`` (optimisation profiles and batch plans), ``trt_build`` (ONNX -> TensorRT engine) and
``engine_cache`` (engines keyed by what they were built from, with a sidecar the loader checks).

May import: runtime.model, runtime.cache, runtime.errors and runtime.backends.base. Never the image,
video or command-line rooms.
"""
