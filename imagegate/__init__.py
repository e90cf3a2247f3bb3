"""imagegate: a self-hostable image-generation API gateway."""

__version__ = "0.1.0"
