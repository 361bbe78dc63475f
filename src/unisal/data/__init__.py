"""Data: items and their sources, catalogues, readers, the decoded-image cache, prepared data.

Importing the package registers every kind of item source (``unisal.data.items.ITEM_SOURCES``):
files and ``.npz`` rows there, tiles of whole-slide images in ``unisal.data.slides``.
"""

from unisal.data import slides as _slides  # noqa: F401  (registers the "tile" item source)
