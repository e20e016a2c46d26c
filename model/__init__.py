"""The pointer/ROI segmentation net and its inference API."""
from .segmenter import Prediction, Segmenter, as_rgb
from .weights import WeightsError

__all__ = ["Prediction", "Segmenter", "WeightsError", "as_rgb"]
