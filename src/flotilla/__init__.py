"""Flotilla: a Kubernetes-native scheduler that places AI workloads across a fleet of GPU clusters."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "flotilla-scheduler"
"""The name on PyPI (``flotilla`` is taken); the import package and the commands are ``flotilla``."""

try:
    __version__ = version(DISTRIBUTION)
    """From git tags at build time (hatch-vcs): the one version number of the package and image."""
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

API_GROUP = "flotilla.dev"
API_VERSION = "v1alpha1"
FIELD_MANAGER = "flotilla"
