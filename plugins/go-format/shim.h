/*
 * C side of the go-format plugin: the vtable, the metadata and the
 * trampolines. cgo cannot define C functions in the preamble of a file that
 * uses //export, nor call C function pointers from Go, so they live here.
 */
#ifndef GOFORMAT_SHIM_H
#define GOFORMAT_SHIM_H

#include "aiplug.h"

/* Host API `cancelled`, callable from Go: false when the host table does not
 * cover the entry or leaves it null. */
bool goformat_host_cancelled(const AiplugCallCtx *ctx);

#endif
