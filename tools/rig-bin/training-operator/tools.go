//go:build tools

// Package tools pins the Kubeflow training operator for the Flotilla test rig.
package tools

import _ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
