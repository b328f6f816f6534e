/*
 * C side of the go-format plugin (see shim.h). The Go half is main.go; the
 * exported Go functions are declared in the cgo-generated _cgo_export.h.
 */
#include <stdlib.h>

#include "shim.h"
#include "_cgo_export.h"

#define PLUGIN_ID "go-format"
#define PLUGIN_VERSION "0.1.0"
#define TASK "go-format"

static const AiplugStr TASKS[] = {
    {(const uint8_t *)TASK, sizeof(TASK) - 1},
};

static const AiplugMetadata METADATA = {
    {(const uint8_t *)PLUGIN_ID, sizeof(PLUGIN_ID) - 1},
    {(const uint8_t *)PLUGIN_VERSION, sizeof(PLUGIN_VERSION) - 1},
    TASKS,
    sizeof TASKS / sizeof TASKS[0],
};

static const AiplugMetadata *gf_metadata(void)
{
    return &METADATA;
}

/* Output buffers are C.malloc'd on the Go side (C.CBytes), so plain free. */
static void gf_free_buf(AiplugBuf buf)
{
    free(buf.ptr);
}

static int32_t gf_invoke(const AiplugCallCtx *ctx, AiplugStr input, AiplugBuf *out)
{
    if (!out)
        return AIPLUG_STATUS_ERROR;
    out->ptr = NULL;
    out->len = 0;
    /* The Go side takes the view apart: cgo passes scalars and pointers
     * more simply than structs by value. */
    return goformatInvoke((AiplugCallCtx *)ctx, (uint8_t *)input.ptr, input.len, out);
}

bool goformat_host_cancelled(const AiplugCallCtx *ctx)
{
    const AiplugHostApi *h = ctx ? ctx->host : NULL;
    if (!h || h->size < offsetof(AiplugHostApi, cancelled) + sizeof h->cancelled || !h->cancelled)
        return false;
    return h->cancelled(ctx);
}

static const AiplugPluginVtable VTABLE = {
    AIPLUG_ABI_MAJOR,
    AIPLUG_ABI_MINOR,
    sizeof(AiplugPluginVtable),
    gf_metadata,
    gf_free_buf,
    NULL, /* on_load: no configuration */
    NULL, /* on_request */
    gf_invoke,
    NULL, /* on_response */
    NULL, /* on_session_end */
    NULL, /* on_unload: nothing to release, and the library is never closed */
};

__attribute__((visibility("default"))) const AiplugPluginVtable *aiplug_plugin_entry(void)
{
    return &VTABLE;
}
