"""UniSAL: unified semi-supervised active learning for histopathology image classification."""

__version__ = "0.1.0"
