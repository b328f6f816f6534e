//! `aiplug serve` driven by the official `openai` Python package.
//!
//! A client nobody here wrote is the check that the gateway speaks
//! OpenAI's API as clients read it: `tests/openai/client_test.py` runs
//! completions (whole and streamed), the models list and the error cases
//! against a real `aiplug serve` forwarding to scripted upstreams, once
//! with a filter plugin that rejects one word (streams replayed after the
//! response filters) and once without plugins (streams live from an SSE
//! upstream). `openai` must be importable
//! (scripts/test.sh installs it): its absence fails the test, so a broken
//! setup never passes as a skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aiplug_testkit::deepseek_server::{Completion, DeepSeekServer};

use crate::{behaviour, tempdir};

/// What both upstreams answer.
const CONTENT: &str = "Paris is the capital of France.";
/// The key the gateway accepts.
const API_KEY: &str = "sk-aiplug-openai-client-test";
/// The word the filter plugin rejects.
const REJECT_WORD: &str = "forbidden-word";
/// How long `aiplug serve` may take to listen, and the client to finish.
const START_LIMIT: Duration = Duration::from_secs(60);
const CLIENT_LIMIT: Duration = Duration::from_secs(180);

/// The Python that runs the client: `$AIPLUG_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("AIPLUG_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// The installed `openai` version; fails the test when it cannot be imported.
fn openai_version(python: &str) -> String {
    let output = Command::new(python)
        .args(["-c", "import openai; print(openai.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): install python3, then pip install openai (scripts/test.sh installs it)")
        });
    assert!(
        output.status.success(),
        "`{python} -c 'import openai'` failed: pip install openai (scripts/test.sh installs it)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A running `aiplug serve`, killed when dropped.
struct Serve {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// Starts `aiplug serve --listen 127.0.0.1:0 --config CONFIG` and waits
    /// for the address it prints.
    fn start(config: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiplug"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .current_dir(config.parent().expect("the config has a directory"))
            .env_remove("RUST_LOG")
            .env("AIPLUG_ALLOW_UNSIGNED", "1")
            .env_remove("AIPLUG_API_KEYS")
            .env_remove("AIPLUG_ADMIN_KEYS")
            .env_remove("DEEPSEEK_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aiplug serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&log);
        // Reads stderr to the end (so the server never blocks on a full
        // pipe), sending the address from the "listening on" line.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                {
                    let mut log = lines.lock().unwrap_or_else(|p| p.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut serve = Serve {
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => serve.addr = addr,
            Err(_) => {
                let status = serve.child.try_wait().ok().flatten();
                panic!(
                    "aiplug serve printed no address within {START_LIMIT:?} (exit status {status:?}); stderr:\n{}",
                    serve.log()
                );
            }
        }
        serve
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python client_test.py args...` with its output in `dir`; kills it
/// after [`CLIENT_LIMIT`]. Returns whether it exited 0, and its output.
fn run_client(python: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai/client_test.py");
    let out_path = dir.join("client.out");
    let out = std::fs::File::create(&out_path).expect("client output file");
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        // The gateway is on loopback: no proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let deadline = Instant::now() + CLIENT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => (true, output),
        Some(status) => {
            output.push_str(&format!("[client_test.py exited with {status}]\n"));
            (false, output)
        }
        None => {
            output.push_str(&format!("[client_test.py killed after {CLIENT_LIMIT:?}]\n"));
            (false, output)
        }
    }
}

/// A gateway on scripted upstreams, and the client's run against it.
///
/// `with_filter`: the plugins dir holds `test-behaviour` rejecting
/// [`REJECT_WORD`]. It is a response filter too, so the host generates a
/// stream whole, filters it and replays it as chunks: both models then ask
/// their upstream for whole answers. Without it, `streamed` streams live
/// from an upstream that sends SSE.
fn openai_client_against_serve(with_filter: bool) {
    let python = python();
    let version = openai_version(&python);

    let answer = Completion::new(CONTENT);
    let whole = DeepSeekServer::repeating(answer.reply());
    let sse = DeepSeekServer::repeating(answer.stream());
    let (stream_upstream, streams_live) = if with_filter {
        (&whole, false)
    } else {
        (&sse, true)
    };

    let dir = tempdir();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    if with_filter {
        behaviour(
            &plugins,
            "test-behaviour",
            &format!("reject_word = \"{REJECT_WORD}\""),
        );
    }
    let config = dir.path().join("aiplug.toml");
    std::fs::write(
        &config,
        format!(
            "default_model = \"plain\"\n\
             \n\
             [models.plain]\n\
             provider = \"openai\"\n\
             base_url = \"{}/v1\"\n\
             model = \"deepseek-chat\"\n\
             \n\
             [models.streamed]\n\
             provider = \"openai\"\n\
             base_url = \"{}/v1\"\n\
             model = \"deepseek-chat\"\n\
             \n\
             [plugins]\n\
             dirs = [\"plugins\"]\n\
             \n\
             [server]\n\
             api_keys = [\"{API_KEY}\"]\n",
            whole.base_url(),
            stream_upstream.base_url()
        ),
    )
    .unwrap();

    let serve = Serve::start(&config);
    let plugins_line = format!("({} plugins, default model plain)", usize::from(with_filter));
    assert!(
        serve.log().contains(&plugins_line),
        "expected {plugins_line}:\n{}",
        serve.log()
    );
    let base_url = format!("http://{}/v1", serve.addr);
    let usage = format!(
        "{},{},{}",
        answer.prompt_tokens,
        answer.completion_tokens(),
        answer.prompt_tokens + answer.completion_tokens()
    );
    let reject_word = if with_filter { REJECT_WORD } else { "" };
    let (passed, output) = run_client(
        &python,
        dir.path(),
        &[
            &base_url,
            API_KEY,
            "--model",
            "plain",
            "--stream-model",
            "streamed",
            "--content",
            CONTENT,
            "--usage",
            &usage,
            "--reject-word",
            reject_word,
            "--reject-plugin",
            "test-behaviour",
        ],
    );
    assert!(
        passed,
        "the openai client ({python}, openai {version}) failed against aiplug serve:\n{output}\n\
         aiplug serve's stderr:\n{}",
        serve.log()
    );
    eprintln!("{output}");
    for case in [
        "non-streaming",
        "streaming without usage",
        "streaming",
        "models.list",
        "unknown model",
        "wrong API key",
    ] {
        assert!(
            output.contains(&format!("\nok   {case}: ")),
            "{case} did not pass:\n{output}"
        );
    }
    if with_filter {
        assert!(output.contains("\nok   filter rejects: "), "{output}");
        assert!(output.contains("\nok   filter rejects a stream: "), "{output}");
    }

    // What the upstreams saw: requests in the mode expected, for the
    // upstream model id, and never one the filter rejected.
    let mut upstreams = vec![("whole", &whole, false)];
    if !with_filter {
        upstreams.push(("sse", &sse, true));
    }
    for (name, server, stream) in upstreams {
        let requests = server.requests();
        assert!(
            !requests.is_empty(),
            "the {name} upstream got no request\n{output}"
        );
        for request in &requests {
            let body = request.body_text();
            assert_eq!(request.path, "/v1/chat/completions", "{name}: {body}");
            assert!(
                !body.contains(REJECT_WORD),
                "a rejected request reached the {name} upstream: {body}"
            );
            let json: serde_json::Value = serde_json::from_str(&body).expect("the upstream got JSON");
            assert_eq!(json["stream"], stream, "{name}: {body}");
            assert_eq!(json["model"], "deepseek-chat", "{name}: {body}");
        }
    }
    assert_eq!(
        streams_live,
        sse.request_count() > 0,
        "live streaming {streams_live}, yet the SSE upstream got {} requests",
        sse.request_count()
    );
}

#[test]
fn the_openai_client_through_a_filter_plugin() {
    openai_client_against_serve(true);
}

#[test]
fn the_openai_client_with_live_streams() {
    openai_client_against_serve(false);
}
