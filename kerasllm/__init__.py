"""kerasllm: a Keras 3 / TensorFlow model zoo for transformer language models."""

__version__ = "0.1.0"
