/*
 * aiplug native plugin ABI.
 *
 * GENERATED from crates/aiplug-abi/src/lib.rs by cbindgen. Do not edit:
 * run `AIPLUG_BLESS=1 cargo test -p aiplug-abi header` after changing the
 * Rust definitions.
 *
 * A plugin is a shared library exporting one symbol, AIPLUG_ENTRY_SYMBOL,
 * of type AiplugEntryFn. Strings are borrowed UTF-8 views (not
 * NUL-terminated). Buffers a plugin hands out are released by the host
 * through the plugin's own free_buf; buffers the host hands out are released
 * by the plugin through AiplugHostApi.free_buf.
 *
 * Output slots arrive as {NULL, 0}: leaving ptr NULL means "no output"
 * ("unchanged" for filters); a non-NULL ptr with len 0 is an empty document.
 * Hooks may run concurrently on any host thread, so they must be
 * thread-safe. on_load runs once before any other hook; on_unload never runs
 * while another hook of the plugin does, and nothing runs after it. ctx and
 * ctx->host are valid in every hook, on_load and on_unload included.
 */

#ifndef AIPLUG_H
#define AIPLUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* The exported entry symbol's name (see AiplugEntryFn). */
#define AIPLUG_ENTRY_SYMBOL "aiplug_plugin_entry"

/* Forward declaration: the host API and the call context refer to each other. */
struct AiplugCallCtx;


/**
 * ABI major version. A host refuses a plugin whose major differs.
 */
#define AIPLUG_ABI_MAJOR 1

/**
 * ABI minor version. A plugin with an older minor loads with newer features
 * off; entries added in newer minors are appended at the vtable's end.
 */
#define AIPLUG_ABI_MINOR 0

/**
 * The hook succeeded. For `on_request`/`on_response` an empty output buffer
 * means "unchanged"; a non-empty one holds the rewritten document.
 */
#define AIPLUG_STATUS_OK 0

/**
 * The hook failed; the output buffer holds the error message.
 */
#define AIPLUG_STATUS_ERROR 1

/**
 * `on_request` only: the request is refused; the output buffer holds the reason.
 */
#define AIPLUG_STATUS_REJECT 2

/**
 * The plugin panicked (or threw); the output buffer holds what is known.
 */
#define AIPLUG_STATUS_PANIC 3

/**
 * The call was cancelled or hit its deadline, and the plugin gave up.
 */
#define AIPLUG_STATUS_CANCELLED 4

/**
 * Host API `session_get`: no value stored under that key.
 */
#define AIPLUG_STATUS_NOT_FOUND 5

/**
 * The entry exists but is not supported in this context (for example `invoke`
 * of a task the plugin does not serve).
 */
#define AIPLUG_STATUS_UNSUPPORTED 6

/**
 * Log level for [`AiplugHostApi::log`]: error.
 */
#define AIPLUG_LOG_ERROR 1

/**
 * Log level: warning.
 */
#define AIPLUG_LOG_WARN 2

/**
 * Log level: information.
 */
#define AIPLUG_LOG_INFO 3

/**
 * Log level: debug.
 */
#define AIPLUG_LOG_DEBUG 4

/**
 * Log level: trace.
 */
#define AIPLUG_LOG_TRACE 5

/**
 * A borrowed view of UTF-8 text or bytes. Not NUL-terminated. `ptr` may be
 * null only when `len` is 0.
 */
typedef struct AiplugStr {
  /**
   * First byte, or null for the empty view.
   */
  const uint8_t *ptr;
  /**
   * Length in bytes.
   */
  size_t len;
} AiplugStr;

/**
 * What a plugin says about itself. Returned by [`AiplugPluginVtable::metadata`];
 * the plugin keeps it valid until the library is closed.
 */
typedef struct AiplugMetadata {
  /**
   * Plugin id; must equal the manifest's `id`.
   */
  struct AiplugStr id;
  /**
   * Plugin version (semver); must equal the manifest's `version`.
   */
  struct AiplugStr version;
  /**
   * Task names served through `invoke` (may be null when `tasks_len` is 0).
   */
  const struct AiplugStr *tasks;
  /**
   * Number of entries in `tasks`.
   */
  size_t tasks_len;
} AiplugMetadata;

/**
 * An owned output buffer, released by the side that allocated it (see the
 * crate docs). `ptr` null means "no output".
 */
typedef struct AiplugBuf {
  /**
   * First byte, or null for no output.
   */
  uint8_t *ptr;
  /**
   * Length in bytes.
   */
  size_t len;
} AiplugBuf;

/**
 * Host API table, handed to every hook through [`AiplugCallCtx::host`].
 * Like the plugin vtable it starts with the ABI version and its own size;
 * entries added in later minors are appended.
 */
typedef struct AiplugHostApi {
  /**
   * ABI major of the host.
   */
  uint32_t abi_major;
  /**
   * ABI minor of the host.
   */
  uint32_t abi_minor;
  /**
   * `sizeof(AiplugHostApi)` as the host was built.
   */
  size_t size;
  /**
   * Releases a buffer the host handed out (from `infer` or `session_get`).
   */
  void (*free_buf)(struct AiplugBuf buf);
  /**
   * Writes `message` to the host's log at `level` (`AIPLUG_LOG_*`), tagged
   * with the plugin id.
   */
  void (*log)(const struct AiplugCallCtx *ctx, uint32_t level, struct AiplugStr message);
  /**
   * Whether the call was cancelled or its deadline has passed. Cheap; poll
   * it in long loops.
   */
  bool (*cancelled)(const struct AiplugCallCtx *ctx);
  /**
   * Runs a chat completion through the host's model providers (and through
   * the other plugins' filters). `request_json` is an OpenAI-style chat
   * request; `model` overrides its `model` field when non-empty. On
   * `AIPLUG_STATUS_OK`, `out` holds the response JSON; otherwise the error
   * message. Either way the plugin frees `out` with `free_buf`.
   */
  int32_t (*infer)(const struct AiplugCallCtx *ctx, struct AiplugStr model, struct AiplugStr request_json, struct AiplugBuf *out);
  /**
   * Reads `key` in the (plugin, session) scope into `out` (freed with
   * `free_buf`). Returns `AIPLUG_STATUS_NOT_FOUND` when absent.
   */
  int32_t (*session_get)(const struct AiplugCallCtx *ctx, struct AiplugStr key, struct AiplugBuf *out);
  /**
   * Stores `value` under `key` in the (plugin, session) scope.
   */
  int32_t (*session_set)(const struct AiplugCallCtx *ctx, struct AiplugStr key, struct AiplugStr value);
  /**
   * Removes `key` from the (plugin, session) scope; absent keys are fine.
   */
  int32_t (*session_delete)(const struct AiplugCallCtx *ctx, struct AiplugStr key);
} AiplugHostApi;

/**
 * The context of one hook call. Valid only during that call.
 */
typedef struct AiplugCallCtx {
  /**
   * The host API. Valid for the whole call.
   */
  const struct AiplugHostApi *host;
  /**
   * Opaque host handle for this call; pass the whole context back to the
   * host API functions, never dereference it.
   */
  const void *call;
  /**
   * Session id, empty when the call belongs to no session.
   */
  struct AiplugStr session_id;
  /**
   * Request id, for logs.
   */
  struct AiplugStr request_id;
  /**
   * For `invoke`: the task the caller asked for, or empty when it called
   * the plugin by id (a plugin serving several tasks dispatches on this).
   * Empty for other hooks.
   */
  struct AiplugStr task;
  /**
   * Deadline as milliseconds since the Unix epoch; 0 means none. Long work
   * should also poll [`AiplugHostApi::cancelled`].
   */
  uint64_t deadline_unix_ms;
} AiplugCallCtx;

/**
 * The plugin's vtable. The first three fields are fixed forever; every
 * later field is optional (null = hook not provided) except `metadata` and
 * `free_buf`, which every ABI 1.x plugin provides.
 */
typedef struct AiplugPluginVtable {
  /**
   * Must equal the host's [`AIPLUG_ABI_MAJOR`].
   */
  uint32_t abi_major;
  /**
   * The minor the plugin was built against.
   */
  uint32_t abi_minor;
  /**
   * `sizeof(AiplugPluginVtable)` as the plugin was built; the host reads
   * only entries this covers.
   */
  size_t size;
  /**
   * Required: returns the plugin's metadata, valid until the library is closed.
   */
  const struct AiplugMetadata *(*metadata)(void);
  /**
   * Required: releases a buffer the plugin handed out.
   */
  void (*free_buf)(struct AiplugBuf buf);
  /**
   * `on_load(ctx, config_json, out)`: `config_json` is the manifest's
   * `[config]` table as JSON. Called once per loaded version; an error
   * (message in `out`) refuses the load.
   */
  int32_t (*on_load)(const struct AiplugCallCtx *ctx, struct AiplugStr config_json, struct AiplugBuf *out);
  /**
   * Request filter `on_request(ctx, request_json, out)`: OK with empty
   * `out` continues unchanged, OK with `out` set continues with the
   * rewritten request, `AIPLUG_STATUS_REJECT` refuses with `out` as reason.
   */
  int32_t (*on_request)(const struct AiplugCallCtx *ctx, struct AiplugStr request_json, struct AiplugBuf *out);
  /**
   * Named service `invoke(ctx, input, out)`: `out` holds the result.
   */
  int32_t (*invoke)(const struct AiplugCallCtx *ctx, struct AiplugStr input, struct AiplugBuf *out);
  /**
   * Response filter `on_response(ctx, request_json, response_json, out)`:
   * empty `out` keeps the response, `out` set replaces it.
   */
  int32_t (*on_response)(const struct AiplugCallCtx *ctx, struct AiplugStr request_json, struct AiplugStr response_json, struct AiplugBuf *out);
  /**
   * `on_session_end(ctx, session_id, out)`: release per-session resources.
   */
  int32_t (*on_session_end)(const struct AiplugCallCtx *ctx, struct AiplugStr session_id, struct AiplugBuf *out);
  /**
   * `on_unload(ctx, out)`: release everything; the library may be closed after.
   */
  int32_t (*on_unload)(const struct AiplugCallCtx *ctx, struct AiplugBuf *out);
} AiplugPluginVtable;

/**
 * Type of the exported entry symbol: returns the plugin's vtable, valid until
 * the library is closed, or null when the plugin cannot run here.
 */
typedef const struct AiplugPluginVtable *(*AiplugEntryFn)(void);

#endif  /* AIPLUG_H */
