//go:build tools

// Package tools pins umoci, which assembles the operator's OCI image without a container daemon
// (tools/image/build.sh).
package tools

import _ "github.com/opencontainers/umoci/cmd/umoci"
