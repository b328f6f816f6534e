module aiplug.dev/plugins/goformat

// Standard library only: no requirements, no go.sum, builds offline.
// Language version 1.22 (unsafe.Slice and friends); scripts/install-go.sh
// installs the pinned 1.27.3 toolchain, any Go >= 1.22 with cgo works.
go 1.22
