//go:build tools

// Package tools pins the metrics-server the test bed builds from this module
// (see ../install-tools.sh); it is never compiled.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
