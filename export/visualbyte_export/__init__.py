"""VisualByte export step: dataset building, training, ONNX export and evaluation.

Run a step with ``python -m visualbyte_export <command> ...``; see ``__main__.py``.
"""

__version__ = "0.1.0"
