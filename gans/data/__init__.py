"""Data: image sources (embedded digits, image folders, TFDS) and feeding."""

from gans.data.sources import ImageSource, LabelledSource, make_source

__all__ = ['ImageSource', 'LabelledSource', 'make_source']
