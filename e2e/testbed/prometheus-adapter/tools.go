//go:build tools

// Package tools pins the Prometheus adapter the test bed builds from this module
// (see ../install-tools.sh); it is never compiled.
package tools

import _ "sigs.k8s.io/prometheus-adapter/cmd/adapter"
