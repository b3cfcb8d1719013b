"""Component resources of the cryptodudez AWS deployment (see ../README.md)."""
