"""Flotilla: a Kubernetes-native scheduler that places AI workloads across a fleet of GPU clusters."""

__version__ = "0.1.0"

API_GROUP = "flotilla.dev"
API_VERSION = "v1alpha1"
FIELD_MANAGER = "flotilla"
