//go:build tools

// Package tools pins the Karmada control-plane commands that the Flotilla peer benchmark
// (benchmarks/peer) builds and runs beside Flotilla; nothing here is compiled into Flotilla.
package tools

import (
	_ "github.com/karmada-io/karmada/cmd/aggregated-apiserver"
	_ "github.com/karmada-io/karmada/cmd/controller-manager"
	_ "github.com/karmada-io/karmada/cmd/scheduler"
	_ "github.com/karmada-io/karmada/cmd/webhook"
)
