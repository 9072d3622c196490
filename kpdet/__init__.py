"""kpdet: heatmap keypoint detection in PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from kpdet import Predictor` without importing torch/cv2 for `import kpdet.config`.
    if name == "Predictor":
        from kpdet.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'kpdet' has no attribute {name!r}")
