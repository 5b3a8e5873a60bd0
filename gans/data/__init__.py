"""Data: image sources (embedded digits, image folders, TFDS) and feeding."""

from gans.data.sources import ImageSource, make_source

__all__ = ['ImageSource', 'make_source']
