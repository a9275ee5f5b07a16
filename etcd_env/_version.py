"""The package version: the one place pyproject.toml (hatch) and flake.nix read it from."""

__version__ = "0.2.0"
