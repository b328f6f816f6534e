/*
 * A configurable C plugin for the host's tests, compiled by the test suite
 * with -D flags to produce each variant it needs:
 *
 *   FIXTURE_ID="\"name\""      plugin id (default "fixture")
 *   FIXTURE_TASK="\"task\""    task served through invoke (default: none)
 *   FIXTURE_ABI_MAJOR=N        vtable abi_major (default AIPLUG_ABI_MAJOR)
 *   FIXTURE_VTABLE_SIZE=N      vtable size field (default sizeof)
 *   FIXTURE_NO_ENTRY=1         export no entry symbol
 *   FIXTURE_NULL_VTABLE=1      entry returns NULL
 *   FIXTURE_FAIL_LOAD=1        on_load fails with a message
 *   FIXTURE_ANSWER="\"text\""  what invoke answers before the input
 *                              (default: the id), so two builds of one
 *                              plugin tell which of them served a call
 *
 * Behaviour: on_request appends "<id>":1 to the request object, so the
 * order of keys shows the order filters ran in; invoke answers
 * "<answer>:<input>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplug.h"

#ifndef FIXTURE_ID
#define FIXTURE_ID "fixture"
#endif
#ifndef FIXTURE_ANSWER
#define FIXTURE_ANSWER FIXTURE_ID
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR AIPLUG_ABI_MAJOR
#endif
#ifndef FIXTURE_VTABLE_SIZE
#define FIXTURE_VTABLE_SIZE sizeof(AiplugPluginVtable)
#endif

static AiplugStr view(const char *s) {
    AiplugStr v = {(const uint8_t *)s, strlen(s)};
    return v;
}

static int32_t emit(AiplugBuf *out, const void *a, size_t alen, const void *b, size_t blen) {
    uint8_t *p = malloc(alen + blen + 1);
    if (p == NULL) return AIPLUG_STATUS_ERROR;
    if (alen) memcpy(p, a, alen);
    if (blen) memcpy(p + alen, b, blen);
    out->ptr = p;
    out->len = alen + blen;
    return AIPLUG_STATUS_OK;
}

#ifdef FIXTURE_TASK
static AiplugStr tasks[1];
#endif
static AiplugMetadata metadata_value;

static const AiplugMetadata *metadata(void) {
    metadata_value.id = view(FIXTURE_ID);
    metadata_value.version = view("0.1.0");
#ifdef FIXTURE_TASK
    tasks[0] = view(FIXTURE_TASK);
    metadata_value.tasks = tasks;
    metadata_value.tasks_len = 1;
#endif
    return &metadata_value;
}

static void free_buf(AiplugBuf buf) { free(buf.ptr); }

static int32_t on_load(const AiplugCallCtx *ctx, AiplugStr config, AiplugBuf *out) {
    (void)ctx;
    (void)config;
#ifdef FIXTURE_FAIL_LOAD
    static const char msg[] = "fixture refuses to load: FIXTURE_FAIL_LOAD is set";
    emit(out, msg, sizeof msg - 1, NULL, 0);
    return AIPLUG_STATUS_ERROR;
#else
    (void)out;
    return AIPLUG_STATUS_OK;
#endif
}

static int32_t on_request(const AiplugCallCtx *ctx, AiplugStr request, AiplugBuf *out) {
    (void)ctx;
    /* request is a JSON object: replace its final '}' with ,"<id>":1} */
    size_t end = request.len;
    while (end > 0 && request.ptr[end - 1] != '}') end--;
    if (end == 0) {
        static const char msg[] = "request is not a JSON object";
        emit(out, msg, sizeof msg - 1, NULL, 0);
        return AIPLUG_STATUS_ERROR;
    }
    char tail[128];
    size_t tlen = (size_t)snprintf(tail, sizeof tail, "%s\"%s\":1}", end > 2 ? "," : "", FIXTURE_ID);
    return emit(out, request.ptr, end - 1, tail, tlen);
}

static int32_t invoke(const AiplugCallCtx *ctx, AiplugStr input, AiplugBuf *out) {
    (void)ctx;
    return emit(out, FIXTURE_ANSWER ":", strlen(FIXTURE_ANSWER ":"), input.ptr, input.len);
}

static const AiplugPluginVtable vtable = {
    .abi_major = FIXTURE_ABI_MAJOR,
    .abi_minor = AIPLUG_ABI_MINOR,
    .size = FIXTURE_VTABLE_SIZE,
    .metadata = metadata,
    .free_buf = free_buf,
    .on_load = on_load,
    .on_request = on_request,
    .invoke = invoke,
};

#ifdef FIXTURE_NO_ENTRY
const AiplugPluginVtable *some_other_symbol(void) { return &vtable; }
#else
const AiplugPluginVtable *aiplug_plugin_entry(void) {
#ifdef FIXTURE_NULL_VTABLE
    (void)vtable;
    return NULL;
#else
    return &vtable;
#endif
}
#endif
