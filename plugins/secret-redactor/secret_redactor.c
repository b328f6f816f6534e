/*
 * secret-redactor: an aiplug native plugin (C, against include/aiplug.h).
 *
 * An `on_request` filter that keeps credentials out of prompts: it scans the
 * request JSON text and replaces API-key-like tokens with a mask before the
 * request reaches any model.
 *
 * Recognised (each token must start at a word boundary, see boundary_before):
 *   - OpenAI / DeepSeek / Anthropic style keys: `sk-` + >= 20 [A-Za-z0-9_-]
 *   - AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary)
 *     + exactly 16 [A-Z0-9]
 *   - GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`
 *     + >= 20 [A-Za-z0-9_]
 *   - PEM private keys: `-----BEGIN <LABEL>-----` where LABEL contains
 *     `PRIVATE KEY`, up to the matching `-----END <LABEL>-----` (inside JSON
 *     the line breaks are `\n` escapes). A block whose END is missing (a key
 *     pasted half) is redacted to the end of the JSON string holding it.
 *
 * It works on the raw JSON text, without parsing: every token class above is
 * made of characters JSON never escapes, so a secret always appears verbatim
 * inside one JSON string, and replacing it with the mask (itself valid JSON
 * string content, see below) keeps the document valid. A match never crosses
 * the end of the JSON string it starts in.
 *
 * Build (from the repository root):
 *   cc -std=c11 -shared -fPIC -O2 -Wall -Wextra -Werror -I include \
 *      -o OUT/libsecret_redactor.so plugins/secret-redactor/secret_redactor.c
 *
 * Config (the manifest's [config] table, as JSON):
 *   mask  string, default "[REDACTED]". It is kept in its JSON-escaped form
 *         exactly as it appears in the config JSON and pasted as is, so any
 *         string works (quotes, backslashes, unicode) and stays valid JSON.
 * Other keys are ignored.
 *
 * Threading: on_request only reads the module state, so the host may call it
 * concurrently; on_load and on_unload are not concurrent with any other call
 * (the host runs on_load before the first call and on_unload after draining).
 */

#include "aiplug.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define EXPORT __attribute__((visibility("default")))
#else
#define EXPORT
#endif

#define PLUGIN_ID "secret-redactor"
#define PLUGIN_VERSION "0.1.0"
#define DEFAULT_MASK "[REDACTED]"

/* Nesting bound of the config scanner (it recurses per level). */
#define CONFIG_MAX_DEPTH 64
/* Longest PEM label we accept between `-----BEGIN ` and `-----`. */
#define PEM_MAX_LABEL 64

/* ------------------------------------------------------------------------ */
/* Module state                                                              */
/* ------------------------------------------------------------------------ */

static struct {
    /* The mask as JSON string content (escaped form); points at DEFAULT_MASK
     * or at a malloc'd copy (mask_owned). */
    const uint8_t *mask;
    size_t mask_len;
    int mask_owned;
} g_state = {(const uint8_t *)DEFAULT_MASK, sizeof(DEFAULT_MASK) - 1, 0};

static void state_reset(void)
{
    if (g_state.mask_owned)
        free((void *)g_state.mask);
    g_state.mask = (const uint8_t *)DEFAULT_MASK;
    g_state.mask_len = sizeof(DEFAULT_MASK) - 1;
    g_state.mask_owned = 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static void buf_clear(AiplugBuf *out)
{
    if (out) {
        out->ptr = NULL;
        out->len = 0;
    }
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void set_message(AiplugBuf *out, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    if (!out)
        return;
    buf_clear(out);
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof tmp)
        n = (int)sizeof tmp - 1; /* truncated */
    if (n == 0)
        return;
    out->ptr = malloc((size_t)n);
    if (!out->ptr)
        return; /* no memory even for the message: status alone */
    memcpy(out->ptr, tmp, (size_t)n);
    out->len = (size_t)n;
}

static void host_log(const AiplugCallCtx *ctx, uint32_t level, const char *msg)
{
    const AiplugHostApi *host;

    if (!ctx || !ctx->host)
        return;
    host = ctx->host;
    /* Prefix-type table: only read `log` when the host's table covers it. */
    if (host->size < offsetof(AiplugHostApi, log) + sizeof host->log || !host->log)
        return;
    AiplugStr s = {(const uint8_t *)msg, strlen(msg)};
    host->log(ctx, level, s);
}

static int is_alnum(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
/* Characters of an `sk-` key body; also what counts as "inside a word". */
static int is_key_char(uint8_t c) { return is_alnum(c) || c == '_' || c == '-'; }
/* Characters of a GitHub token body; also the right boundary of AWS ids. */
static int is_ident_char(uint8_t c) { return is_alnum(c) || c == '_'; }
static int is_upper_digit(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
static int is_pem_label_char(uint8_t c) { return is_upper_digit(c) || c == ' '; }

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether t[i..] starts with the n bytes of lit. */
static int has_at(const uint8_t *t, size_t len, size_t i, const char *lit, size_t n)
{
    return i <= len && len - i >= n && memcmp(t + i, lit, n) == 0;
}
#define HAS_AT(t, len, i, lit) has_at((t), (len), (i), (lit), sizeof(lit) - 1)

/* Number of bytes from t[i] on that satisfy cls. */
static size_t run_length(const uint8_t *t, size_t len, size_t i, int (*cls)(uint8_t))
{
    size_t j = i;
    while (j < len && cls(t[j]))
        j++;
    return j - i;
}

/* Number of consecutive backslashes ending at t[k-1]. */
static size_t backslashes_before(const uint8_t *t, size_t k)
{
    size_t n = 0;
    while (k > 0 && t[k - 1] == '\\') {
        n++;
        k--;
    }
    return n;
}

/*
 * Whether a token may start at t[i]: the character before it (as the JSON
 * string decodes) is not part of a word. The raw text needs care with escapes:
 * in `\nsk-...` the byte before `s` is `n`, but it is the escape of a line
 * break; in `\u0041sk-` it is an `A`. Non-ASCII bytes count as boundaries
 * (redacting too much is the safe side for this filter).
 */
static int boundary_before(const uint8_t *t, size_t i)
{
    uint8_t c;

    if (i == 0)
        return 1;
    c = t[i - 1];
    if (!is_key_char(c))
        return 1;
    /* `\uXXXX` ending right before i, its backslash not itself escaped. */
    if (i >= 6 && t[i - 5] == 'u' && t[i - 6] == '\\' && backslashes_before(t, i - 5) % 2 == 1) {
        int h0 = hex_value(t[i - 4]), h1 = hex_value(t[i - 3]);
        int h2 = hex_value(t[i - 2]), h3 = hex_value(t[i - 1]);
        if (h0 >= 0 && h1 >= 0 && h2 >= 0 && h3 >= 0) {
            unsigned cp = (unsigned)(h0 << 12 | h1 << 8 | h2 << 4 | h3);
            return !(cp < 0x80 && is_key_char((uint8_t)cp));
        }
    }
    /* `\n`, `\t`, `\r`, `\b`, `\f` escapes. */
    if ((c == 'n' || c == 't' || c == 'r' || c == 'b' || c == 'f') && i >= 2
        && backslashes_before(t, i - 1) % 2 == 1)
        return 1;
    return 0;
}

/*
 * End of the JSON string that contains t[i]: the index of the next unescaped
 * `"` at or after i, or len. i must not be in the middle of an escape.
 */
static size_t string_end(const uint8_t *t, size_t len, size_t i)
{
    while (i < len) {
        if (t[i] == '"')
            return i;
        if (t[i] == '\\')
            i += (len - i >= 2) ? 2 : 1;
        else
            i++;
    }
    return len;
}

/* First occurrence of needle (n bytes) in t[from..to), or to. */
static size_t find_in(const uint8_t *t, size_t from, size_t to, const uint8_t *needle, size_t n)
{
    size_t i = from;
    if (n == 0 || to < from)
        return to;
    while (to - i >= n) {
        const uint8_t *p = memchr(t + i, needle[0], to - i - n + 1);
        if (!p)
            return to;
        i = (size_t)(p - t);
        if (memcmp(p, needle, n) == 0)
            return i;
        i++;
    }
    return to;
}

/* ------------------------------------------------------------------------ */
/* Matchers: each returns the match's end (> i) or 0 for no match at t[i].   */
/* ------------------------------------------------------------------------ */

static size_t match_sk(const uint8_t *t, size_t len, size_t i)
{
    size_t body;
    if (!HAS_AT(t, len, i, "sk-") || !boundary_before(t, i))
        return 0;
    body = run_length(t, len, i + 3, is_key_char);
    return body >= 20 ? i + 3 + body : 0;
}

static size_t match_aws(const uint8_t *t, size_t len, size_t i)
{
    if (!(HAS_AT(t, len, i, "AKIA") || HAS_AT(t, len, i, "ASIA")) || !boundary_before(t, i))
        return 0;
    if (run_length(t, len, i + 4, is_upper_digit) < 16)
        return 0;
    /* Exactly 16: a longer word is not an access key id. */
    if (i + 20 < len && is_ident_char(t[i + 20]))
        return 0;
    return i + 20;
}

static size_t match_github(const uint8_t *t, size_t len, size_t i)
{
    static const char *const prefixes[] = {"github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"};
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t n = strlen(prefixes[k]);
        if (has_at(t, len, i, prefixes[k], n)) {
            size_t body;
            if (!boundary_before(t, i))
                return 0;
            body = run_length(t, len, i + n, is_ident_char);
            return body >= 20 ? i + n + body : 0;
        }
    }
    return 0;
}

static size_t match_pem(const uint8_t *t, size_t len, size_t i)
{
    static const char begin[] = "-----BEGIN ";
    static const char end_prefix[] = "-----END ";
    static const char dashes[] = "-----";
    static const char private_key[] = "PRIVATE KEY";
    uint8_t marker[sizeof end_prefix - 1 + PEM_MAX_LABEL + sizeof dashes - 1];
    size_t label_at, label_len, header_end, str_end, found, marker_len;

    if (!HAS_AT(t, len, i, begin))
        return 0;
    label_at = i + sizeof begin - 1;
    label_len = run_length(t, len, label_at, is_pem_label_char);
    if (label_len == 0 || label_len > PEM_MAX_LABEL || !HAS_AT(t, len, label_at + label_len, dashes))
        return 0;
    if (find_in(t, label_at, label_at + label_len, (const uint8_t *)private_key,
                sizeof private_key - 1) == label_at + label_len)
        return 0; /* a certificate or public key: not a secret */
    header_end = label_at + label_len + sizeof dashes - 1;

    /* `-----END <LABEL>-----` */
    marker_len = 0;
    memcpy(marker, end_prefix, sizeof end_prefix - 1);
    marker_len += sizeof end_prefix - 1;
    memcpy(marker + marker_len, t + label_at, label_len);
    marker_len += label_len;
    memcpy(marker + marker_len, dashes, sizeof dashes - 1);
    marker_len += sizeof dashes - 1;

    /* Never cross the end of the JSON string holding the key. */
    str_end = string_end(t, len, header_end);
    found = find_in(t, header_end, str_end, marker, marker_len);
    return found < str_end ? found + marker_len : str_end;
}

/*
 * Finds the first secret starting at or after `from`. Returns 1 and sets
 * [*start, *end) on a match, 0 when there is none.
 */
static int next_secret(const uint8_t *t, size_t len, size_t from, size_t *start, size_t *end)
{
    for (size_t i = from; i < len; i++) {
        size_t e = 0;
        switch (t[i]) {
        case 's': e = match_sk(t, len, i); break;
        case 'A': e = match_aws(t, len, i); break;
        case 'g': e = match_github(t, len, i); break;
        case '-': e = match_pem(t, len, i); break;
        default: break;
        }
        if (e > i) {
            *start = i;
            *end = e;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Config scanner (a strict subset of JSON, enough for the host's output)    */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *t;
    size_t len;
    size_t pos;
    const char *error; /* static text, set on the first error */
} scanner;

static int scan_fail(scanner *s, const char *why)
{
    if (!s->error)
        s->error = why;
    return 0;
}

static void scan_ws(scanner *s)
{
    while (s->pos < s->len) {
        uint8_t c = s->t[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        s->pos++;
    }
}

/* A string at s->pos; on success [*at, *at + *n) is its raw (escaped) content. */
static int scan_string(scanner *s, size_t *at, size_t *n)
{
    if (s->pos >= s->len || s->t[s->pos] != '"')
        return scan_fail(s, "expected a string");
    s->pos++;
    *at = s->pos;
    while (s->pos < s->len) {
        uint8_t c = s->t[s->pos];
        if (c == '"') {
            *n = s->pos - *at;
            s->pos++;
            return 1;
        }
        if (c < 0x20)
            return scan_fail(s, "control character in a string");
        if (c == '\\') {
            uint8_t e;
            if (s->len - s->pos < 2)
                return scan_fail(s, "unterminated escape");
            e = s->t[s->pos + 1];
            if (e == 'u') {
                if (s->len - s->pos < 6)
                    return scan_fail(s, "unterminated \\u escape");
                for (size_t k = 2; k < 6; k++)
                    if (hex_value(s->t[s->pos + k]) < 0)
                        return scan_fail(s, "bad \\u escape");
                s->pos += 6;
                continue;
            }
            if (e == 0 || !strchr("\"\\/bfnrt", e))
                return scan_fail(s, "bad escape");
            s->pos += 2;
            continue;
        }
        s->pos++;
    }
    return scan_fail(s, "unterminated string");
}

static int scan_value(scanner *s, int depth);

static int scan_container(scanner *s, int depth, uint8_t close, int is_object)
{
    size_t at, n;
    if (depth > CONFIG_MAX_DEPTH)
        return scan_fail(s, "nested too deeply");
    s->pos++; /* the opening bracket */
    scan_ws(s);
    if (s->pos < s->len && s->t[s->pos] == close) {
        s->pos++;
        return 1;
    }
    for (;;) {
        if (is_object) {
            if (!scan_string(s, &at, &n))
                return 0;
            scan_ws(s);
            if (s->pos >= s->len || s->t[s->pos] != ':')
                return scan_fail(s, "expected ':'");
            s->pos++;
            scan_ws(s);
        }
        if (!scan_value(s, depth + 1))
            return 0;
        scan_ws(s);
        if (s->pos < s->len && s->t[s->pos] == ',') {
            s->pos++;
            scan_ws(s);
            continue;
        }
        if (s->pos < s->len && s->t[s->pos] == close) {
            s->pos++;
            return 1;
        }
        return scan_fail(s, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int is_literal_char(uint8_t c)
{
    return is_alnum(c) || c == '-' || c == '+' || c == '.';
}

static int scan_value(scanner *s, int depth)
{
    size_t at, n;
    if (s->pos >= s->len)
        return scan_fail(s, "expected a value");
    switch (s->t[s->pos]) {
    case '"': return scan_string(s, &at, &n);
    case '{': return scan_container(s, depth, '}', 1);
    case '[': return scan_container(s, depth, ']', 0);
    default:
        /* number, true, false, null: the host wrote valid JSON, so a loose
         * check is enough to skip it. */
        n = run_length(s->t, s->len, s->pos, is_literal_char);
        if (n == 0)
            return scan_fail(s, "expected a value");
        s->pos += n;
        return 1;
    }
}

/*
 * Reads the config object. On success *mask_at and *mask_len give the raw mask
 * (or *mask_at == SIZE_MAX when absent); on failure the message is in out.
 */
static int parse_config(AiplugStr cfg, size_t *mask_at, size_t *mask_len, AiplugBuf *out)
{
    scanner s = {cfg.ptr, cfg.len, 0, NULL};
    *mask_at = SIZE_MAX;
    *mask_len = 0;

    if (cfg.len == 0)
        return 1; /* no config at all: defaults */
    if (!cfg.ptr) {
        set_message(out, PLUGIN_ID ": config: null pointer with length %zu", cfg.len);
        return 0;
    }
    scan_ws(&s);
    if (s.pos >= s.len || s.t[s.pos] != '{') {
        set_message(out, PLUGIN_ID ": config: expected a JSON object");
        return 0;
    }
    s.pos++;
    scan_ws(&s);
    if (s.pos < s.len && s.t[s.pos] == '}') {
        s.pos++;
    } else {
        for (;;) {
            size_t key_at, key_len;
            if (!scan_string(&s, &key_at, &key_len))
                break;
            scan_ws(&s);
            if (s.pos >= s.len || s.t[s.pos] != ':') {
                scan_fail(&s, "expected ':'");
                break;
            }
            s.pos++;
            scan_ws(&s);
            if (key_len == 4 && memcmp(s.t + key_at, "mask", 4) == 0) {
                if (s.pos >= s.len || s.t[s.pos] != '"') {
                    set_message(out, PLUGIN_ID ": config: `mask` must be a string");
                    return 0;
                }
                if (!scan_string(&s, mask_at, mask_len))
                    break;
            } else if (!scan_value(&s, 1)) {
                break;
            }
            scan_ws(&s);
            if (s.pos < s.len && s.t[s.pos] == ',') {
                s.pos++;
                scan_ws(&s);
                continue;
            }
            if (s.pos < s.len && s.t[s.pos] == '}') {
                s.pos++;
                break;
            }
            scan_fail(&s, "expected ',' or '}'");
            break;
        }
    }
    if (!s.error) {
        scan_ws(&s);
        if (s.pos != s.len)
            scan_fail(&s, "trailing characters after the object");
    }
    if (s.error) {
        set_message(out, PLUGIN_ID ": config: invalid JSON at byte %zu: %s", s.pos, s.error);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                     */
/* ------------------------------------------------------------------------ */

static const AiplugMetadata METADATA = {
    {(const uint8_t *)PLUGIN_ID, sizeof(PLUGIN_ID) - 1},
    {(const uint8_t *)PLUGIN_VERSION, sizeof(PLUGIN_VERSION) - 1},
    NULL,
    0,
};

static const AiplugMetadata *sr_metadata(void)
{
    return &METADATA;
}

static void sr_free_buf(AiplugBuf buf)
{
    free(buf.ptr);
}

static int32_t sr_on_load(const AiplugCallCtx *ctx, AiplugStr config_json, AiplugBuf *out)
{
    size_t at, n;
    uint8_t *copy = NULL;

    buf_clear(out);
    if (!parse_config(config_json, &at, &n, out))
        return AIPLUG_STATUS_ERROR;
    if (at != SIZE_MAX && n > 0) {
        copy = malloc(n);
        if (!copy) {
            set_message(out, PLUGIN_ID ": out of memory copying the mask");
            return AIPLUG_STATUS_ERROR;
        }
        memcpy(copy, config_json.ptr + at, n);
    }
    /* Loading twice must not leak: drop whatever a previous load kept. */
    state_reset();
    if (at != SIZE_MAX) {
        g_state.mask = copy ? copy : (const uint8_t *)""; /* "" is a valid mask */
        g_state.mask_len = n;
        g_state.mask_owned = copy != NULL;
    }
    {
        char msg[160];
        int shown = g_state.mask_len > 64 ? 64 : (int)g_state.mask_len;
        snprintf(msg, sizeof msg, "loaded; mask \"%.*s\"%s", shown, (const char *)g_state.mask,
                 g_state.mask_len > 64 ? "..." : "");
        host_log(ctx, AIPLUG_LOG_DEBUG, msg);
    }
    return AIPLUG_STATUS_OK;
}

static int32_t sr_on_request(const AiplugCallCtx *ctx, AiplugStr request_json, AiplugBuf *out)
{
    const uint8_t *t = request_json.ptr;
    size_t len = request_json.len;
    const uint8_t *mask = g_state.mask;
    size_t mask_len = g_state.mask_len;
    size_t count = 0, removed = 0, pos = 0, start, end, out_len, w;
    uint8_t *buf;

    if (!out)
        return AIPLUG_STATUS_ERROR;
    buf_clear(out);
    if (len == 0)
        return AIPLUG_STATUS_OK;
    if (!t) {
        set_message(out, PLUGIN_ID ": request: null pointer with length %zu", len);
        return AIPLUG_STATUS_ERROR;
    }

    /* Pass 1: count, so the output is allocated once at its exact size. */
    while (next_secret(t, len, pos, &start, &end)) {
        count++;
        removed += end - start;
        pos = end;
    }
    if (count == 0)
        return AIPLUG_STATUS_OK; /* unchanged: nothing copied */

    out_len = len - removed;
    if (mask_len != 0 && count > (SIZE_MAX - out_len) / mask_len) {
        set_message(out, PLUGIN_ID ": redacted request too large");
        return AIPLUG_STATUS_ERROR;
    }
    out_len += count * mask_len;
    if (out_len == 0) {
        /* Cannot happen with a JSON document (it has quotes), and an empty
         * buffer would read as "unchanged": fail closed. */
        set_message(out, PLUGIN_ID ": request consists of a secret only");
        return AIPLUG_STATUS_ERROR;
    }
    buf = malloc(out_len);
    if (!buf) {
        /* Fail closed: never let the unredacted request through. */
        set_message(out, PLUGIN_ID ": out of memory redacting the request");
        return AIPLUG_STATUS_ERROR;
    }

    /* Pass 2: copy, pasting the mask over each match. */
    pos = 0;
    w = 0;
    while (next_secret(t, len, pos, &start, &end)) {
        memcpy(buf + w, t + pos, start - pos);
        w += start - pos;
        if (mask_len)
            memcpy(buf + w, mask, mask_len);
        w += mask_len;
        pos = end;
    }
    memcpy(buf + w, t + pos, len - pos);
    w += len - pos;
    if (w != out_len) { /* the scan is deterministic; keep a guard anyway */
        free(buf);
        set_message(out, PLUGIN_ID ": internal error (length %zu != %zu)", w, out_len);
        return AIPLUG_STATUS_ERROR;
    }

    out->ptr = buf;
    out->len = out_len;
    {
        char msg[64];
        snprintf(msg, sizeof msg, "redacted %zu secret%s", count, count == 1 ? "" : "s");
        host_log(ctx, AIPLUG_LOG_INFO, msg);
    }
    return AIPLUG_STATUS_OK;
}

static int32_t sr_on_unload(const AiplugCallCtx *ctx, AiplugBuf *out)
{
    (void)ctx;
    buf_clear(out);
    state_reset();
    return AIPLUG_STATUS_OK;
}

static const AiplugPluginVtable VTABLE = {
    AIPLUG_ABI_MAJOR,
    AIPLUG_ABI_MINOR,
    sizeof(AiplugPluginVtable),
    sr_metadata,
    sr_free_buf,
    sr_on_load,
    sr_on_request,
    NULL, /* invoke */
    NULL, /* on_response */
    NULL, /* on_session_end */
    sr_on_unload,
};

EXPORT const AiplugPluginVtable *aiplug_plugin_entry(void)
{
    return &VTABLE;
}
