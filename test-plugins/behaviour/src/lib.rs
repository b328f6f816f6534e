//! `test-behaviour`: a plugin whose behaviour the test suite picks through
//! `[config] mode`, to drive the host through the failure classes it must
//! survive and to measure the call path. Not an example: see `plugins/`.
//!
//! Modes:
//! - `"normal"` (default): tasks `word-count` (counts whitespace-separated
//!   words; the benchmark's workload), `echo`, `sleep` (input: milliseconds,
//!   polls cancellation), `high-water` (the most `sleep` calls that ever
//!   ran at once in this process), and `host-api` (input is a command exercising the
//!   host API: `set KEY VALUE`, `get KEY`, `delete KEY`, `infer MODEL TEXT`,
//!   `log TEXT`). Request filter: rejects requests containing
//!   `[config] reject_word`, tags the model with `[config] tag`. Response
//!   filter: appends `[config] response_suffix` to the first choice.
//! - `"fail-load"`: `on_load` returns an error.
//! - `"panic-load"`: `on_load` panics.
//! - `"hang-load"`: `on_load` sleeps `[config] sleep_ms` (default 60 000).
//! - `"panic"`: loads, then panics in every hook, `on_unload` included.
//!
//! With `[config] thread_local_drop = true` (any mode), every `invoke`
//! touches a `thread_local!` whose value implements `Drop`: Rust's std then
//! registers a thread-exit destructor in this library for the calling
//! thread (glibc's `__cxa_thread_atexit_impl`), the case that makes closing
//! a library hazardous.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiplug_sdk::{export_plugin, Context, Error, Hooks, Level, Plugin, Verdict};
use serde_json::Value;

/// Counts whitespace-separated words: the benchmark's workload, also called
/// directly (through `dyn Fn`) as the baseline.
pub fn word_count(input: &[u8]) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for &b in input {
        let space = b.is_ascii_whitespace();
        words += usize::from(in_word && space);
        in_word = !space;
    }
    words + usize::from(in_word)
}

/// The test plugin.
pub struct Behaviour {
    panic: bool,
    reject_word: Option<String>,
    tag: Option<String>,
    response_suffix: Option<String>,
    thread_local_drop: bool,
}

/// Calls counted by threads that have exited (their [`PerThread`] dropped).
static CALLS_OF_EXITED_THREADS: AtomicU64 = AtomicU64::new(0);

/// `sleep` calls running now, and the most that ever ran at once (task
/// `high-water`): what the host's `max_concurrency` must bound.
static SLEEPING: AtomicU64 = AtomicU64::new(0);
static SLEEPING_HIGH_WATER: AtomicU64 = AtomicU64::new(0);

/// Counts a `sleep` call out however it ends.
struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        SLEEPING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-thread state with a destructor, run when the thread exits.
struct PerThread {
    calls: Cell<u64>,
}

impl Drop for PerThread {
    fn drop(&mut self) {
        CALLS_OF_EXITED_THREADS.fetch_add(self.calls.get(), Ordering::Relaxed);
    }
}

thread_local! {
    static PER_THREAD: PerThread = const { PerThread { calls: Cell::new(0) } };
}

fn config_str(config: &Value, key: &str) -> Option<String> {
    config.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Plugin for Behaviour {
    const ID: &'static str = "test-behaviour";
    const VERSION: &'static str = "0.1.0";
    const TASKS: &'static [&'static str] = &["word-count", "echo", "sleep", "high-water", "host-api"];
    const HOOKS: Hooks = Hooks::INVOKE
        .with(Hooks::ON_REQUEST)
        .with(Hooks::ON_RESPONSE)
        .with(Hooks::ON_SESSION_END);

    fn load(ctx: &Context<'_>, config_json: &str) -> Result<Self, Error> {
        let config: Value = serde_json::from_str(config_json).map_err(|e| Error::new(e.to_string()))?;
        let mode = config_str(&config, "mode").unwrap_or_else(|| "normal".into());
        match mode.as_str() {
            "fail-load" => return Err(Error::new("configured to fail: mode = \"fail-load\"")),
            "panic-load" => panic!("configured to panic in on_load"),
            "hang-load" => {
                let ms = config.get("sleep_ms").and_then(Value::as_u64).unwrap_or(60_000);
                std::thread::sleep(Duration::from_millis(ms));
            }
            "normal" | "panic" => {}
            other => return Err(Error::new(format!("unknown mode {other:?}"))),
        }
        ctx.log(Level::Info, &format!("test-behaviour loaded in mode {mode}"));
        Ok(Behaviour {
            panic: mode == "panic",
            reject_word: config_str(&config, "reject_word"),
            tag: config_str(&config, "tag"),
            response_suffix: config_str(&config, "response_suffix"),
            thread_local_drop: config.get("thread_local_drop").and_then(Value::as_bool) == Some(true),
        })
    }

    fn on_request(&self, _ctx: &Context<'_>, request_json: &str) -> Result<Verdict, Error> {
        if self.panic {
            panic!("configured to panic in on_request");
        }
        if let Some(word) = &self.reject_word {
            if request_json.contains(word.as_str()) {
                return Ok(Verdict::Reject(format!("the request contains {word:?}")));
            }
        }
        if let Some(tag) = &self.tag {
            let mut request: Value =
                serde_json::from_str(request_json).map_err(|e| Error::new(e.to_string()))?;
            let model = request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            request["model"] = Value::String(format!("{model}{tag}"));
            return Ok(Verdict::Rewrite(request.to_string()));
        }
        Ok(Verdict::Continue)
    }

    fn invoke(&self, ctx: &Context<'_>, input: &[u8]) -> Result<Vec<u8>, Error> {
        if self.panic {
            panic!("configured to panic in invoke");
        }
        if self.thread_local_drop {
            PER_THREAD.with(|t| t.calls.set(t.calls.get() + 1));
        }
        match ctx.task().unwrap_or("echo") {
            "word-count" => Ok(word_count(input).to_string().into_bytes()),
            "echo" => Ok(input.to_vec()),
            "high-water" => Ok(SLEEPING_HIGH_WATER
                .load(Ordering::SeqCst)
                .to_string()
                .into_bytes()),
            "sleep" => {
                let now = SLEEPING.fetch_add(1, Ordering::SeqCst) + 1;
                SLEEPING_HIGH_WATER.fetch_max(now, Ordering::SeqCst);
                let _leave = Leave;
                let ms: u64 = std::str::from_utf8(input)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| Error::new("sleep: input must be milliseconds"))?;
                let until = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < until {
                    if ctx.is_cancelled() {
                        return Err(Error::cancelled("sleep interrupted by cancellation"));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(b"slept".to_vec())
            }
            "host-api" => host_api(ctx, input),
            other => Err(Error::unsupported(format!("task {other:?}"))),
        }
    }

    fn on_response(
        &self,
        _ctx: &Context<'_>,
        _request: &str,
        response_json: &str,
    ) -> Result<Option<String>, Error> {
        if self.panic {
            panic!("configured to panic in on_response");
        }
        let Some(suffix) = &self.response_suffix else {
            return Ok(None);
        };
        let mut response: Value =
            serde_json::from_str(response_json).map_err(|e| Error::new(e.to_string()))?;
        if let Some(content) = response.pointer_mut("/choices/0/message/content") {
            let text = content.as_str().unwrap_or("").to_string();
            *content = Value::String(format!("{text}{suffix}"));
        }
        Ok(Some(response.to_string()))
    }

    fn on_session_end(&self, ctx: &Context<'_>, session_id: &str) -> Result<(), Error> {
        if self.panic {
            panic!("configured to panic in on_session_end");
        }
        ctx.log(Level::Info, &format!("session {session_id} ended"));
        Ok(())
    }

    fn unload(self, _ctx: &Context<'_>) -> Result<(), Error> {
        if self.panic {
            panic!("configured to panic in on_unload");
        }
        Ok(())
    }
}

fn host_api(ctx: &Context<'_>, input: &[u8]) -> Result<Vec<u8>, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error::new(e.to_string()))?;
    let mut words = text.splitn(3, ' ');
    let command = words.next().unwrap_or("");
    let (a, b) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    match command {
        "set" => ctx.session_set(a, b.as_bytes()).map(|()| b"ok".to_vec()),
        "get" => Ok(ctx.session_get(a)?.unwrap_or_else(|| b"<none>".to_vec())),
        "delete" => ctx.session_delete(a).map(|()| b"ok".to_vec()),
        "infer" => {
            let request = serde_json::json!({"messages": [{"role": "user", "content": b}]});
            ctx.infer(a, &request.to_string()).map(String::into_bytes)
        }
        "log" => {
            ctx.log(Level::Warn, b);
            Ok(b"ok".to_vec())
        }
        other => Err(Error::new(format!("unknown host-api command {other:?}"))),
    }
}

export_plugin!(Behaviour);

#[cfg(test)]
mod tests {
    use super::word_count;

    #[test]
    fn counts_words() {
        assert_eq!(word_count(b""), 0);
        assert_eq!(word_count(b"  "), 0);
        assert_eq!(word_count(b"one"), 1);
        assert_eq!(word_count(b" two  words\n"), 2);
        assert_eq!(word_count(b"a b\tc\nd"), 4);
    }
}
