"""PrefLoop trainer: the InstructGPT training stages in plain PyTorch + transformers.

This package never imports Django; it meets the web side only through files (JSONL datasets in,
model directories and metrics out). Submodules import torch/transformers lazily so that
``import trainer`` stays cheap.
"""

__version__ = "0.1.0"
