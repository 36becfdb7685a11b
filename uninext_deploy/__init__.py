"""uninext-deploy: UniNeXt, ConvMLP and UniNet backbones from PyTorch to edge inference."""

__version__ = "0.1.0"
