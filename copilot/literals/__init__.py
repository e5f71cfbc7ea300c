"""Codecs between Flyte literals and plain files, one module per direction."""
