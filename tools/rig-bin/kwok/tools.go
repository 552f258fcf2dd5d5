//go:build tools

// Package tools pins KWOK for the Flotilla test rig.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
