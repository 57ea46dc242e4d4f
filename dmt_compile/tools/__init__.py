"""Applications on top of the library: the CLI and its commands, the quality harness, the emulated bench.

Nothing in the library imports this package.
"""
