//go:build tools

// Package tools pins the etcd server the test bed builds from this module
// (see ../install-tools.sh); it is never compiled.
package tools

import _ "go.etcd.io/etcd/server/v3"
