"""PyTorch -> static ONNX, and the precision graphs derived from it. Knows ONNX, not runtimes."""
