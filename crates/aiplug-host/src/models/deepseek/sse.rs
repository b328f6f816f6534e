//! The chat-completions event stream: data-only server-sent events.
//!
//! DeepSeek (and every OpenAI-compatible server) streams one JSON chunk per
//! `data: {...}` line, separated by blank lines, and ends with
//! `data: [DONE]`. While a request waits in DeepSeek's queue the server sends
//! `: keep-alive` comment lines instead. This module reads such a body line
//! by line, with no lookahead, so each chunk reaches the caller as soon as
//! its line is complete.
//!
//! Each `data:` line is taken as one event. The SSE specification would join
//! consecutive `data:` lines of one event with newlines, but no
//! chat-completions server splits a chunk's JSON over lines, and dispatching
//! per line also serves servers that leave out the blank separator lines.

use std::io::{self, BufRead, Read};

use crate::models::wire::{ChatChunk, ChunkAssembler};
use crate::models::ChatResponse;

/// The longest line accepted (16 MiB): a chunk carries a few tokens, so a
/// longer line means the body is not an event stream.
const MAX_LINE: u64 = 16 << 20;

/// How much of an offending line an error message quotes.
const QUOTE: usize = 200;

/// One line of an event stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseLine<'a> {
    /// `data: <payload>`: one chunk's JSON.
    Data(&'a str),
    /// `data: [DONE]`: the end of the stream.
    Done,
    /// A comment (`: keep-alive`), a blank line, or an `event:`, `id:` or
    /// `retry:` field, which the chat-completions protocol does not use.
    Ignored,
}

/// Parses one line (with or without its `\n` / `\r\n`). `Err` says why the
/// line is not part of an event stream.
pub(crate) fn parse_line(line: &[u8]) -> Result<SseLine<'_>, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // A UTF-8 byte order mark may open the stream.
    let line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
    if line.is_empty() || line[0] == b':' {
        return Ok(SseLine::Ignored);
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("a stream line is not UTF-8 ({e}): {}", quote_bytes(line)))?;
    let (field, value) = match text.split_once(':') {
        Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
        None => (text, ""),
    };
    match field {
        "data" if value.trim_end() == "[DONE]" => Ok(SseLine::Done),
        "data" => Ok(SseLine::Data(value)),
        "event" | "id" | "retry" => Ok(SseLine::Ignored),
        _ => Err(format!(
            "expected a `data:` line of an event stream, got {}",
            quote(text)
        )),
    }
}

/// Decodes one `data:` payload. An `{"error": ...}` object (some servers
/// report failures mid-stream that way) is `Err(Api(message))`.
pub(crate) fn decode_chunk(data: &str) -> Result<ChatChunk, ChunkError> {
    match serde_json::from_str::<ChatChunk>(data) {
        Ok(chunk) if chunk.choices.is_empty() && chunk.usage.is_none() => match chunk.extra.get("error") {
            Some(error) => Err(ChunkError::Api(super::errors::describe_error_value(error))),
            None => Ok(chunk),
        },
        Ok(chunk) => Ok(chunk),
        Err(e) => Err(ChunkError::Malformed(format!(
            "a stream `data:` line is not a chat.completion.chunk ({e}): {}",
            quote(data)
        ))),
    }
}

/// Why a `data:` payload is not a chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// Not JSON, or not the chunk's shape.
    Malformed(String),
    /// The server reported an error in the stream.
    Api(String),
}

/// Why reading a stream stopped short.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Reading the body failed (connection broke, timeout).
    Io(io::Error),
    /// The body is not a chat-completions event stream.
    Protocol(String),
    /// The server reported an error in the stream.
    Api(String),
    /// `stop` asked to stop (cancellation, deadline).
    Stopped(crate::models::ModelError),
}

/// Reads an event stream to `data: [DONE]`: calls `sink` with each chunk,
/// folds the chunks into the returned response, and counts them in
/// `delivered` (so the caller knows whether output was already seen when
/// the stream fails). `stop` runs before each line is read; an `Err` from it
/// ends the stream with [`StreamError::Stopped`].
pub(crate) fn read_stream<R: BufRead>(
    mut reader: R,
    sink: &mut dyn FnMut(&ChatChunk),
    delivered: &mut usize,
    stop: &mut dyn FnMut() -> Result<(), crate::models::ModelError>,
) -> Result<ChatResponse, StreamError> {
    let mut assembler = ChunkAssembler::new();
    let mut line = Vec::with_capacity(256);
    let mut lines = 0usize;
    loop {
        stop().map_err(StreamError::Stopped)?;
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(StreamError::Io)?;
        if read == 0 {
            return Err(StreamError::Protocol(format!(
                "the stream ended without `data: [DONE]` after {} chunk(s) in {lines} line(s){}",
                *delivered,
                if lines == 0 {
                    " (the body was empty)".to_string()
                } else {
                    String::new()
                }
            )));
        }
        if line.len() as u64 > MAX_LINE {
            return Err(StreamError::Protocol(format!(
                "a stream line is longer than {} MiB: {}",
                MAX_LINE >> 20,
                quote_bytes(&line)
            )));
        }
        lines += 1;
        match parse_line(&line).map_err(StreamError::Protocol)? {
            SseLine::Ignored => {}
            SseLine::Done => {
                let mut response = assembler.finish();
                // The assembler starts from `ChatResponse::default()`, whose
                // `object` is empty; a plain call says `chat.completion`.
                if response.object.is_empty() {
                    response.object = "chat.completion".to_string();
                }
                return Ok(response);
            }
            SseLine::Data(data) => {
                let chunk = decode_chunk(data).map_err(|e| match e {
                    ChunkError::Malformed(message) => StreamError::Protocol(message),
                    ChunkError::Api(message) => StreamError::Api(message),
                })?;
                sink(&chunk);
                assembler.push(&chunk);
                *delivered += 1;
            }
        }
    }
}

/// `text` in quotes, cut to [`QUOTE`] bytes (at a character boundary).
pub(crate) fn quote(text: &str) -> String {
    if text.len() <= QUOTE {
        return format!("{text:?}");
    }
    let mut end = QUOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

fn quote_bytes(bytes: &[u8]) -> String {
    quote(&String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE + 4)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelError;

    #[test]
    fn data_lines_with_and_without_the_space() {
        assert_eq!(parse_line(b"data: {\"a\":1}\n"), Ok(SseLine::Data("{\"a\":1}")));
        assert_eq!(parse_line(b"data:{\"a\":1}\r\n"), Ok(SseLine::Data("{\"a\":1}")));
        assert_eq!(parse_line(b"data: [DONE]\n"), Ok(SseLine::Done));
        assert_eq!(parse_line(b"data:[DONE]\r\n"), Ok(SseLine::Done));
        assert_eq!(parse_line(b"data: [DONE]"), Ok(SseLine::Done));
    }

    #[test]
    fn keep_alive_comments_blank_lines_and_other_fields_are_ignored() {
        for line in [
            &b": keep-alive\n"[..],
            b":\n",
            b"\n",
            b"\r\n",
            b"",
            b"event: message\n",
            b"id: 7\n",
            b"retry: 3000\n",
            "\u{feff}: keep-alive\n".as_bytes(),
        ] {
            assert_eq!(
                parse_line(line),
                Ok(SseLine::Ignored),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn lines_that_are_not_an_event_stream_are_errors_that_quote_them() {
        let error = parse_line(b"{\"error\":{\"message\":\"boom\"}}\n").unwrap_err();
        assert!(
            error.contains("expected a `data:` line") && error.contains("boom"),
            "{error}"
        );
        assert!(parse_line(b"<html>\n").unwrap_err().contains("<html>"));
        assert!(parse_line(b"data: \xff\xfe\n").unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn quotes_are_cut_at_a_character_boundary() {
        let long = "é".repeat(300);
        let quoted = quote(&long);
        assert!(quoted.ends_with("... (600 bytes)"), "{quoted}");
        assert!(quoted.len() < 220);
    }

    #[test]
    fn chunks_decode_and_error_objects_are_reported() {
        let chunk = decode_chunk(
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("hi"));
        assert_eq!(
            decode_chunk(r#"{"error":{"message":"model overloaded","type":"server_error"}}"#),
            Err(ChunkError::Api("model overloaded (server_error)".into()))
        );
        assert!(matches!(decode_chunk("not json"), Err(ChunkError::Malformed(m)) if m.contains("not json")));
        // The final usage chunk has no choices but is a chunk.
        let usage = decode_chunk(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        );
        assert_eq!(usage.unwrap().usage.unwrap().total_tokens, 3);
    }

    fn run(body: &str) -> (Result<ChatResponse, StreamError>, Vec<ChatChunk>) {
        let mut seen = Vec::new();
        let mut delivered = 0;
        let result = read_stream(
            body.as_bytes(),
            &mut |c: &ChatChunk| seen.push(c.clone()),
            &mut delivered,
            &mut || Ok(()),
        );
        assert_eq!(delivered, seen.len());
        (result, seen)
    }

    #[test]
    fn a_stream_is_read_to_done_and_assembled() {
        let body = ": keep-alive\n\n: keep-alive\n\n\
            data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
            data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n\
            data:{\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\
            data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n\
            data: [DONE]\n\nanything after DONE is not read";
        let (result, seen) = run(body);
        let response = result.unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(response.text(), "Hello");
        assert_eq!(response.object, "chat.completion");
        assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(response.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn a_stream_without_done_is_a_protocol_error_that_counts_the_chunks() {
        let (result, seen) = run("data: {\"id\":\"a\",\"choices\":[]}\n\n");
        assert_eq!(seen.len(), 1);
        match result {
            Err(StreamError::Protocol(m)) => {
                assert!(m.contains("without `data: [DONE]` after 1 chunk"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match run("").0 {
            Err(StreamError::Protocol(m)) => assert!(m.contains("body was empty"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_non_json_data_line_is_a_protocol_error() {
        let (result, seen) =
            run("data: {\"id\":\"a\",\"choices\":[]}\n\ndata: {truncated\n\ndata: [DONE]\n\n");
        assert_eq!(seen.len(), 1);
        match result {
            Err(StreamError::Protocol(m)) => assert!(m.contains("{truncated"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stop_is_checked_before_every_line() {
        let body =
            "data: {\"id\":\"a\",\"choices\":[]}\n\ndata: {\"id\":\"a\",\"choices\":[]}\n\ndata: [DONE]\n\n";
        let mut delivered = 0;
        let mut checks = 0;
        let result = read_stream(
            body.as_bytes(),
            &mut |_: &ChatChunk| {},
            &mut delivered,
            &mut || {
                checks += 1;
                if checks == 3 {
                    Err(ModelError::Cancelled)
                } else {
                    Ok(())
                }
            },
        );
        // Lines: data, blank, (stop before the third line).
        assert!(matches!(result, Err(StreamError::Stopped(ModelError::Cancelled))));
        assert_eq!(delivered, 1);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        let mut delivered = 0;
        let result = read_stream(
            io::BufReader::new(Endless),
            &mut |_: &ChatChunk| {},
            &mut delivered,
            &mut || Ok(()),
        );
        match result {
            Err(StreamError::Protocol(m)) => assert!(m.contains("longer than 16 MiB"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
