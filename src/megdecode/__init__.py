"""megdecode: decode seen images from MEG recordings."""

__version__ = "0.1.0"
