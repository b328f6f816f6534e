//! The host's side of `bench/review.sh`: review throughput of the
//! `code-review` plugin on a real model, and the share of the wall time
//! spent outside the model.
//!
//! ```text
//! review_bench [--plugins DIR] [--model NAME] [--reps N] FILE...
//! ```
//!
//! Builds the host the way `aiplug review` does (built-in model table, the
//! plugins of `--plugins`, default `target/plugins`), wraps the chosen model
//! in a timer, and invokes the `code-review` task on each file `--reps`
//! times with the input `aiplug review` sends (context length from the
//! model table, 384 answer tokens per chunk on local models). Per file and
//! repetition: wall time of the invoke, time inside the model's `chat`,
//! tokens in and out, findings. Prints one JSON line per repetition and a
//! summary line with medians: lines/s and the share outside the model.
//!
//! "Outside the model" is everything the review costs that is not the
//! model's `chat`: the plugin's prompt building, chunking, answer parsing
//! and validation, the host's call path and JSON (de)serialisation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiplug_host::models::table::{ModelTable, ModelsConfig};
use aiplug_host::models::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ModelCall, ModelError, ModelInfo,
};
use aiplug_host::{CallOptions, HostBuilder};
use serde_json::json;

/// Answer budget per chunk on local models: the CLI's value.
const LOCAL_MAX_TOKENS: u32 = 384;

/// A model that counts the time spent in its inner model's `chat`.
struct Timed {
    inner: Arc<dyn ChatModel>,
    nanos: AtomicU64,
    calls: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
}

impl Timed {
    fn take(&self) -> (Duration, u64, u64, u64) {
        (
            Duration::from_nanos(self.nanos.swap(0, Ordering::Relaxed)),
            self.calls.swap(0, Ordering::Relaxed),
            self.tokens_in.swap(0, Ordering::Relaxed),
            self.tokens_out.swap(0, Ordering::Relaxed),
        )
    }
}

impl ChatModel for Timed {
    fn info(&self) -> ModelInfo {
        self.inner.info()
    }

    fn chat(
        &self,
        request: &ChatRequest,
        call: ModelCall<'_>,
        stream: Option<&mut dyn FnMut(&ChatChunk)>,
    ) -> Result<ChatResponse, ModelError> {
        let start = Instant::now();
        let result = self.inner.chat(request, call, stream);
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Ok(usage) = result.as_ref().map(|r| r.usage.clone().unwrap_or_default()) {
            self.tokens_in.fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            self.tokens_out
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        // The local provider's own split: prompt vs generation time, and how
        // often the JSON grammar refused the unconstrained pick.
        if let Some(timings) = result.as_ref().ok().and_then(|r| r.extra.get("timings")) {
            eprintln!("model timings: {timings}");
        }
        result
    }
}

fn main() {
    let mut plugins = PathBuf::from("target/plugins");
    let mut model_name: Option<String> = None;
    let mut reps = 3usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--plugins" => plugins = PathBuf::from(value()),
            "--model" => model_name = Some(value()),
            "--reps" => reps = value().parse().unwrap_or_else(|_| die("--reps: not a number")),
            _ if arg.starts_with("--") => die(&format!("unknown option {arg}")),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() {
        die("name the files to review");
    }

    let table = ModelTable::build(&ModelsConfig::default(), &|name| std::env::var(name).ok())
        .unwrap_or_else(|e| die(&e.to_string()));
    let name = model_name.unwrap_or(table.default.clone());
    let inner = table
        .models
        .get(&name)
        .cloned()
        .unwrap_or_else(|| die(&format!("no model named {name}")));
    let info = inner.info();
    let timed = Arc::new(Timed {
        inner,
        nanos: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        tokens_in: AtomicU64::new(0),
        tokens_out: AtomicU64::new(0),
    });
    let host = HostBuilder::new()
        .trust(aiplug_host::TrustPolicy::AllowUnsigned)
        .model(name.clone(), Arc::clone(&timed) as Arc<dyn ChatModel>)
        .default_model(name.clone())
        .build();
    for result in host.load_dir(&plugins) {
        if let Err(e) = result {
            die(&format!("{e} ({})", e.fix()));
        }
    }
    let max_tokens = (info.provider == "local").then_some(LOCAL_MAX_TOKENS);

    // One warm-up call loads the model weights, which is not review work.
    let warm = ChatRequest {
        max_tokens: Some(1),
        ..ChatRequest::user("hi")
    };
    if let Err(e) = host.infer(&warm, &CallOptions::new(), None) {
        die(&format!("model {name}: {e}"));
    }
    timed.take();

    let (mut lines_total, mut wall_total, mut model_total) = (0usize, Vec::new(), Vec::new());
    for rep in 0..reps {
        let (mut wall_sum, mut model_sum) = (Duration::ZERO, Duration::ZERO);
        lines_total = 0;
        for file in &files {
            let source =
                std::fs::read_to_string(file).unwrap_or_else(|e| die(&format!("{}: {e}", file.display())));
            let lines = source.lines().count();
            lines_total += lines;
            let mut input = json!({
                "path": file.display().to_string(),
                "source": source,
                "model": name,
                "context_tokens": info.context_length.unwrap_or(4096),
            });
            if let Some(max_tokens) = max_tokens {
                input["max_tokens"] = json!(max_tokens);
            }
            let input = serde_json::to_vec(&input).unwrap_or_default();
            let start = Instant::now();
            let output = host
                .invoke("code-review", &input, &CallOptions::new())
                .unwrap_or_else(|e| die(&format!("{}: {e}", file.display())));
            let wall = start.elapsed();
            let (model, calls, tokens_in, tokens_out) = timed.take();
            let output: serde_json::Value = serde_json::from_slice(&output).unwrap_or_default();
            let findings = output["findings"].as_array().map_or(0, Vec::len);
            println!(
                "{}",
                json!({
                    "rep": rep,
                    "file": file.display().to_string(),
                    "lines": lines,
                    "wall_s": wall.as_secs_f64(),
                    "model_s": model.as_secs_f64(),
                    "outside_ms": (wall.saturating_sub(model)).as_secs_f64() * 1e3,
                    "model_calls": calls,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "findings": findings,
                    "dropped": output["dropped"],
                })
            );
            wall_sum += wall;
            model_sum += model;
        }
        wall_total.push(wall_sum);
        model_total.push(model_sum);
    }
    let wall = median(&wall_total);
    let model = median(&model_total);
    let outside: Vec<f64> = wall_total
        .iter()
        .zip(&model_total)
        .map(|(w, m)| w.saturating_sub(*m).as_secs_f64() / w.as_secs_f64())
        .collect();
    println!(
        "{}",
        json!({
            "summary": true,
            "model": name,
            "files": files.len(),
            "lines": lines_total,
            "reps": reps,
            "median_wall_s": wall.as_secs_f64(),
            "median_model_s": model.as_secs_f64(),
            "lines_per_s": lines_total as f64 / wall.as_secs_f64(),
            "median_outside_share": median_f64(outside),
        })
    );
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn die(message: &str) -> ! {
    eprintln!("review_bench: {message}");
    std::process::exit(2);
}
