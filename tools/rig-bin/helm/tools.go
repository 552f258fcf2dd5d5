//go:build tools

// Package tools pins helm for the Flotilla test rig.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
