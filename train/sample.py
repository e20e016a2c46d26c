"""The one record every data reader yields."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """A data file is missing, unreadable or inconsistent; the message names the file."""


@dataclass
class Sample:
    """An image with its ground-truth segments.

    image: HxWx3 uint8 RGB.
    segments: list of HxW bool masks, pairwise disjoint, each one segment (thing instance or stuff region).
    ignore: HxW bool, pixels that no metric or loss looks at (crowd, void, uncertain borders).
    name: a label for logs and reports (usually the file stem).
    """

    image: np.ndarray
    segments: list[np.ndarray]
    ignore: np.ndarray
    name: str = ""
    category_ids: list[int] = field(default_factory=list)

    def label_map(self) -> np.ndarray:
        """HxW int32 map, 0 = no segment, k = segments[k-1]."""
        out = np.zeros(self.image.shape[:2], np.int32)
        for k, m in enumerate(self.segments, 1):
            out[m] = k
        return out
