"""Pure model modules: no file I/O, no downloads, no prints."""
