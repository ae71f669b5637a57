"""The package version, importable without importing the package's face (which registers the EP)."""

__version__ = "0.1.0"
