//go:build tools

// Package tools pins the kubo command so `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
