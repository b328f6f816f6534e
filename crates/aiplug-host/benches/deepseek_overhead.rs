//! The `deepseek` provider's own cost per request and per streamed chunk
//! (run: `bench/deepseek-overhead.sh`).
//!
//! Both sides talk to the same local protocol server
//! (`aiplug_testkit::deepseek_server`, loopback, HTTP keep-alive) and make
//! the same exchange:
//! - `provider`: `DeepSeekProvider::chat`, which serialises the
//!   `ChatRequest`, sends it, reads the body and parses it into a
//!   `ChatResponse` (streams: parses every chunk, calls the sink, assembles);
//! - `bare`: a bare `ureq` agent POSTing the same body bytes, serialised once
//!   before timing, and reading the response bytes without parsing them
//!   (streams: reading lines up to `data: [DONE]`).
//!
//! The difference of the medians is what the provider adds on top of the
//! network: serialisation, parsing, assembly, retry and deadline
//! bookkeeping. Samples of the two sides are interleaved in small batches
//! so that drift (CPU frequency, the other core's load) hits both alike.
//! The goal of the models issue: under 100 µs per request excluding the
//! network. A last column times the same CPU work alone (no I/O) as a
//! cross-check.
//!
//! Pass `--quick` (after `--`) for a smoke run with few samples.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use aiplug_host::models::deepseek::{DeepSeekProvider, DeepSeekSettings};
use aiplug_host::models::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChunkAssembler, Message, ModelCall,
};
use aiplug_host::CancellationToken;
use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer};

/// The goal: provider overhead per request, excluding the network.
const GOAL: Duration = Duration::from_micros(100);
/// Chunks in the streamed answer.
const STREAM_CHUNKS: usize = 200;

struct Plan {
    /// Plain requests per side and case.
    plain: usize,
    /// Streams per side.
    streams: usize,
    /// Samples per side before switching to the other.
    batch: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            plain: 200,
            streams: 30,
            batch: 10,
        }
    } else {
        Plan {
            plain: 5000,
            streams: 1000,
            batch: 25,
        }
    };
    let started = Instant::now();
    let mut rows = Vec::new();

    let answer = Completion::new(&words(60)).prompt_tokens(420, 384);
    for (label, request) in [
        ("plain, 200 B prompt", small_request()),
        ("plain, 32 KiB conversation", large_request()),
    ] {
        let server = DeepSeekServer::repeating(answer.reply());
        let (provider, bare) = sides(&server, &request, false);
        let (p, b) = interleave(plan.plain, plan.batch, &provider, &bare);
        let cpu = cpu_plain(&request, &answer.json(), plan.plain);
        rows.push(Row {
            label: label.into(),
            provider: p,
            bare: b,
            cpu,
            per: 1,
            unit: "request",
        });
    }

    // Role chunk + content pieces + finish chunk + usage chunk.
    let streamed = Completion::new(&words(STREAM_CHUNKS - 3)).prompt_tokens(420, 384);
    assert_eq!(streamed.chunks().len(), STREAM_CHUNKS);
    let server = DeepSeekServer::repeating(streamed.stream());
    let request = small_request();
    let (provider, bare) = sides(&server, &request, true);
    let (p, b) = interleave(plan.streams, plan.batch.min(10), &provider, &bare);
    let cpu = cpu_stream(&streamed.chunks(), plan.streams);
    rows.push(Row {
        label: format!("stream of {STREAM_CHUNKS} chunks"),
        provider: p,
        bare: b,
        cpu,
        per: STREAM_CHUNKS,
        unit: "chunk",
    });

    print_table(&rows, started.elapsed(), quick);
}

/// A short chat request (about 200 bytes of JSON).
fn small_request() -> ChatRequest {
    let mut request = ChatRequest::user("Review this function for bugs and say what you would change.");
    request
        .messages
        .insert(0, Message::new("system", "You are a careful code reviewer."));
    request.temperature = Some(0.2);
    request.max_tokens = Some(512);
    request
}

/// A 32 KiB conversation of 12 messages.
fn large_request() -> ChatRequest {
    let mut request = ChatRequest::user("Summarise the discussion.");
    request
        .messages
        .insert(0, Message::new("system", "You are a careful code reviewer."));
    for i in 0..10 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        request.messages.insert(1 + i, Message::new(role, words(550)));
    }
    request.max_tokens = Some(512);
    let size = serde_json::to_vec(&request).unwrap().len();
    assert!((30_000..36_000).contains(&size), "{size}");
    request
}

/// `n` words of prose.
fn words(n: usize) -> String {
    const WORDS: [&str; 12] = [
        "the",
        "reviewer",
        "reads",
        "each",
        "change",
        "and",
        "notes",
        "what",
        "could",
        "break",
        "in",
        "production",
    ];
    (0..n)
        .map(|i| WORDS[i % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

type Side<'a> = Box<dyn Fn() + 'a>;

/// The provider call and the bare exchange of the same request.
fn sides<'a>(server: &DeepSeekServer, request: &'a ChatRequest, stream: bool) -> (Side<'a>, Side<'a>) {
    let provider = DeepSeekProvider::new(DeepSeekSettings {
        base_url: server.base_url(),
        api_key: Some("sk-bench".into()),
        max_retries: 0,
        ..DeepSeekSettings::default()
    })
    .expect("provider");
    let cancel = CancellationToken::new();
    let provider_side: Side<'a> = Box::new(move || {
        let call = ModelCall {
            cancel: &cancel,
            deadline: Some(Instant::now() + Duration::from_secs(30)),
        };
        let response = if stream {
            let mut chunks = 0usize;
            let mut sink = |chunk: &ChatChunk| {
                chunks += black_box(chunk.choices.len());
            };
            provider.chat(request, call, Some(&mut sink))
        } else {
            provider.chat(request, call, None)
        };
        black_box(response.expect("provider call"));
    });

    // The same body the provider sends, serialised once, outside the timing.
    let mut wire = request.clone();
    wire.model = "deepseek-chat".into();
    wire.stream = Some(stream);
    if stream {
        wire.stream_options = Some(serde_json::json!({"include_usage": true}));
    }
    let body = serde_json::to_vec(&wire).unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{}/chat/completions", server.base_url());
    let bare_side: Side<'a> = Box::new(move || {
        let response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header(
                "Accept",
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .header("Authorization", "Bearer sk-bench")
            .send(&body[..])
            .expect("bare call");
        if stream {
            let mut reader = BufReader::new(response.into_body().into_reader());
            let mut line = Vec::new();
            loop {
                line.clear();
                assert!(
                    reader.read_until(b'\n', &mut line).unwrap() > 0,
                    "stream ended early"
                );
                if line.starts_with(b"data: [DONE]") {
                    break;
                }
                black_box(&line);
            }
        } else {
            black_box(response.into_body().read_to_vec().unwrap());
        }
    });
    (provider_side, bare_side)
}

/// Times `n` runs of each side in alternating batches (after a warm-up);
/// returns both medians.
fn interleave(n: usize, batch: usize, a: &Side<'_>, b: &Side<'_>) -> (Duration, Duration) {
    for _ in 0..(n / 10).max(5) {
        a();
        b();
    }
    let mut ta = Vec::with_capacity(n);
    let mut tb = Vec::with_capacity(n);
    while ta.len() < n {
        for (side, times) in [(a, &mut ta), (b, &mut tb)] {
            for _ in 0..batch {
                let start = Instant::now();
                side();
                times.push(start.elapsed());
            }
        }
    }
    (median(ta), median(tb))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Serialising a request and parsing a response, as the provider does for
/// a plain call, without I/O. Median per request.
fn cpu_plain(request: &ChatRequest, response: &str, n: usize) -> Duration {
    let times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let mut wire = black_box(request).clone();
            wire.model = "deepseek-chat".into();
            wire.stream = Some(false);
            black_box(serde_json::to_vec(&wire).unwrap());
            black_box(serde_json::from_slice::<ChatResponse>(black_box(response.as_bytes())).unwrap());
            start.elapsed()
        })
        .collect();
    median(times)
}

/// Parsing and assembling a stream's chunks, without I/O. Median per chunk.
fn cpu_stream(chunks: &[String], n: usize) -> Duration {
    let times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let mut assembler = ChunkAssembler::new();
            for chunk in chunks {
                let chunk: ChatChunk = serde_json::from_str(black_box(chunk)).unwrap();
                assembler.push(&chunk);
            }
            black_box(assembler.finish());
            start.elapsed()
        })
        .collect();
    median(times) / chunks.len() as u32
}

struct Row {
    label: String,
    provider: Duration,
    bare: Duration,
    /// The provider's CPU work alone, per `unit`.
    cpu: Duration,
    /// The overhead is divided by this (chunks per stream).
    per: usize,
    unit: &'static str,
}

impl Row {
    fn overhead(&self) -> Duration {
        self.provider.saturating_sub(self.bare) / self.per as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn print_table(rows: &[Row], took: Duration, quick: bool) {
    println!();
    println!(
        "DeepSeek provider overhead against a local protocol server (loopback, HTTP keep-alive; medians)"
    );
    if quick {
        println!("(--quick: few samples, numbers are rough)");
    }
    println!();
    println!(
        "| {:<28} | {:>10} | {:>10} | {:>18} | {:>18} |",
        "case", "provider", "bare ureq", "provider overhead", "CPU only, no I/O"
    );
    println!("|{:-<30}|{:->12}|{:->12}|{:->20}|{:->20}|", "", "", "", "", "");
    for row in rows {
        println!(
            "| {:<28} | {:>10} | {:>10} | {:>18} | {:>18} |",
            row.label,
            us(row.provider),
            us(row.bare),
            format!("{} /{}", us(row.overhead()), row.unit),
            format!("{} /{}", us(row.cpu), row.unit),
        );
    }
    println!();
    let worst = rows
        .iter()
        .filter(|r| r.per == 1)
        .map(Row::overhead)
        .max()
        .unwrap_or_default();
    println!(
        "goal: under {} per request excluding the network: {} (largest overhead measured: {})",
        us(GOAL),
        if worst < GOAL { "MET" } else { "NOT MET" },
        us(worst)
    );
    println!("ran in {:.1} s", took.as_secs_f64());
}
