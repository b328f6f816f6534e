//! The local provider's side of `bench/local-llm.sh`: everything goes
//! through `LocalModel` and the `ChatModel` trait, as the host calls it.
//!
//! ```text
//! local_bench speed  [--model PATH] [--threads N] [--fa on|off] [--pp 512] [--tg 128] [--reps 5]
//! local_bench memory [--model PATH] [--threads N] [--names 1] [--ttft-reps 10]
//! ```
//!
//! `speed` sends a greedy request whose prompt is exactly `--pp` tokens
//! (chat template included) with `max_tokens = --tg` and `ignore_eos`, and
//! times it from the stream: prompt tokens/s from the call to the first
//! chunk (which comes right after the prompt is decoded: rendering,
//! tokenizing, the slot, the context and the decode all count), generated
//! tokens/s from the first chunk to the finish chunk (`tg` tokens sampled,
//! `tg - 1` decoded). One warm-up request, then `--reps`; prints one JSON
//! line with means, standard deviations and every sample.
//!
//! `memory` opens `--names` model names on the same file, loads each and
//! runs a short chat on each, then prints one JSON line: RSS now and at
//! peak (VmRSS, VmHWM), the time the first request took in this process
//! (open + load + first token, file in the page cache, hash cached), and
//! the median time to first token of a loaded model.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiplug_host::models::local::{LocalModel, LocalSettings};
use aiplug_host::models::{ChatModel, ChatRequest, ModelCall};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Args {
    mode: String,
    model: PathBuf,
    threads: u32,
    fa: Option<bool>,
    pp: u32,
    tg: u32,
    reps: usize,
    names: usize,
    ttft_reps: usize,
}

fn parse() -> Args {
    let mut args = Args {
        mode: String::new(),
        model: aiplug_host::models::weights::models_dir().join(aiplug_host::models::pull::SMOLLM2_FILE),
        threads: 2,
        fa: Some(true),
        pp: 512,
        tg: 128,
        reps: 5,
        names: 1,
        ttft_reps: 10,
    };
    let mut it = std::env::args().skip(1);
    args.mode = it.next().unwrap_or_default();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| die(&format!("{flag} needs a value")));
        let number = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| die(&format!("{flag}: not a number")))
        };
        match flag.as_str() {
            "--model" => args.model = PathBuf::from(&value),
            "--threads" => args.threads = number() as u32,
            "--fa" => {
                args.fa = match value.as_str() {
                    "on" | "1" => Some(true),
                    "off" | "0" => Some(false),
                    "auto" => None,
                    _ => die("--fa is on, off or auto"),
                }
            }
            "--pp" => args.pp = number() as u32,
            "--tg" => args.tg = number() as u32,
            "--reps" => args.reps = number() as usize,
            "--names" => args.names = number() as usize,
            "--ttft-reps" => args.ttft_reps = number() as usize,
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    args
}

fn die(message: &str) -> ! {
    eprintln!("local_bench: {message}");
    std::process::exit(2)
}

fn open(args: &Args, name: &str) -> LocalModel {
    let settings = LocalSettings {
        threads: Some(args.threads),
        flash_attention: args.fa,
        ..LocalSettings::new(name, &args.model)
    };
    LocalModel::open(settings).unwrap_or_else(|e| die(&e.to_string()))
}

/// Stream timestamps of one call: start, first chunk (role), first content,
/// finish chunk.
struct Stamps {
    start: Instant,
    role: Instant,
    first_content: Instant,
    finish: Instant,
    completion_tokens: u64,
}

fn timed(model: &LocalModel, request: &ChatRequest) -> Stamps {
    let cancel = CancellationToken::new();
    let call = ModelCall {
        cancel: &cancel,
        deadline: None,
    };
    let mut role = None;
    let mut first_content = None;
    let mut finish = None;
    let start = Instant::now();
    let response = model
        .chat(
            request,
            call,
            Some(&mut |chunk| {
                let now = Instant::now();
                let Some(choice) = chunk.choices.first() else {
                    return;
                };
                if choice.delta.role.is_some() {
                    role.get_or_insert(now);
                } else if choice.delta.content.as_deref().is_some_and(|c| !c.is_empty()) {
                    first_content.get_or_insert(now);
                }
                if choice.finish_reason.is_some() {
                    finish = Some(now);
                }
            }),
        )
        .unwrap_or_else(|e| die(&e.to_string()));
    let role = role.expect("a role chunk");
    Stamps {
        start,
        role,
        first_content: first_content.unwrap_or(role),
        finish: finish.expect("a finish chunk"),
        completion_tokens: response.usage.map_or(0, |u| u.completion_tokens),
    }
}

/// A user message whose rendered prompt is exactly `target` tokens (or the
/// closest below, padded with one-token words).
fn prompt_of(model: &LocalModel, target: u32) -> (ChatRequest, u32) {
    let text = "The history of computing is a story of people who wanted machines to do arithmetic, \
                then logic, then language. Early mechanical calculators gave way to relays, valves \
                and transistors; each step made machines smaller, faster and cheaper. ";
    let words: Vec<&str> = text.repeat(200).leak().split(' ').collect();
    let make = |n: usize| ChatRequest::user(words[..n].join(" "));
    let count = |n: usize| {
        model
            .count_tokens(&make(n))
            .unwrap_or_else(|e| die(&e.to_string()))
    };
    let (mut lo, mut hi) = (1usize, words.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(mid) <= target {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut request = make(lo);
    let mut n = count(lo);
    while n < target {
        let mut padded = request.clone();
        padded.messages[0] = aiplug_host::models::Message::new("user", padded.messages[0].text() + " a");
        let m = model
            .count_tokens(&padded)
            .unwrap_or_else(|e| die(&e.to_string()));
        if m > target {
            break;
        }
        request = padded;
        n = m;
    }
    (request, n)
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64;
    (mean, var.sqrt())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn speed(args: &Args) {
    let model = open(args, "bench");
    model.load().unwrap_or_else(|e| die(&e.to_string()));
    let (mut request, n_prompt) = prompt_of(&model, args.pp);
    request.temperature = Some(0.0);
    request.max_tokens = Some(args.tg);
    request.extra.insert("ignore_eos".into(), json!(true));

    let _warm_up = timed(&model, &request);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for _ in 0..args.reps {
        let s = timed(&model, &request);
        assert_eq!(
            s.completion_tokens,
            u64::from(args.tg),
            "ignore_eos generates max_tokens"
        );
        pp.push(f64::from(n_prompt) / secs(s.role - s.start));
        tg.push((f64::from(args.tg) - 1.0) / secs(s.finish - s.role));
    }
    let (pp_mean, pp_sd) = mean_sd(&pp);
    let (tg_mean, tg_sd) = mean_sd(&tg);
    println!(
        "{}",
        json!({
            "mode": "speed", "threads": args.threads, "flash_attention": args.fa,
            "prompt_tokens": n_prompt, "generated_tokens": args.tg, "reps": args.reps,
            "pp_ts": pp_mean, "pp_sd": pp_sd, "tg_ts": tg_mean, "tg_sd": tg_sd,
            "pp_samples": pp, "tg_samples": tg,
        })
    );
}

fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn memory(args: &Args) {
    let mut request = ChatRequest::user("Say hello.");
    request.temperature = Some(0.0);
    request.max_tokens = Some(8);

    let start = Instant::now();
    let first = open(args, "name-0");
    let s = timed(&first, &request);
    let cold_ttft = s.first_content - start;
    let mut models = vec![first];
    for i in 1..args.names {
        let model = open(args, &format!("name-{i}"));
        timed(&model, &request);
        models.push(model);
    }
    assert!(
        models.iter().all(|m| m.shares_weights_with(&models[0])),
        "one mapping for every name"
    );

    let mut ttft = Vec::new();
    for i in 0..args.ttft_reps {
        let s = timed(&models[i % models.len()], &request);
        ttft.push(secs(s.first_content - s.start));
    }
    ttft.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "mode": "memory", "names": args.names,
            "rss_kb": status_kb("VmRSS:"), "peak_rss_kb": status_kb("VmHWM:"),
            "cold_first_token_ms": secs(cold_ttft) * 1000.0,
            "warm_first_token_ms": ttft[ttft.len() / 2] * 1000.0,
            "prompt_tokens": models[0].count_tokens(&request).unwrap_or(0),
        })
    );
}

fn main() {
    let args = parse();
    match args.mode.as_str() {
        "speed" => speed(&args),
        "memory" => memory(&args),
        _ => die("usage: local_bench speed|memory [flags] (see the source's docs)"),
    }
}
