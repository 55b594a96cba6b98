"""The primitive vocabulary, one module per family."""
