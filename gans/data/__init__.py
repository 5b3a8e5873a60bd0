"""Data: image sources (embedded digits, image folders, MNIST IDX files, TFDS) and feeding."""

from gans.data.folder import FolderSource
from gans.data.idx import IdxSource
from gans.data.sources import DigitsSource, ImageSource, LabelledSource, make_source
from gans.data.tfds_source import TfdsSource

__all__ = ['DigitsSource', 'FolderSource', 'IdxSource', 'ImageSource', 'LabelledSource',
           'TfdsSource', 'make_source']
