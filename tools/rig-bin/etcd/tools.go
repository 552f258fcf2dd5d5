//go:build tools

// Package tools pins etcd for the Flotilla test rig.
package tools

import _ "go.etcd.io/etcd/server/v3"
