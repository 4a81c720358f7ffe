"""Data: SynthFashion, the on-disk format, importers, transforms and loaders."""
