"""Data readers, sampling, trainer and evaluation for the pointer/ROI segmentation net."""
