//! The chat-completions wire types (OpenAI's protocol as DeepSeek extends
//! it), owned here because generic OpenAI client crates drop DeepSeek's
//! fields (`reasoning_content`, cache-hit usage).
//!
//! Every struct keeps the fields it does not know in `extra` and writes them
//! back out, so a request field a provider adds tomorrow (or a vendor's own)
//! passes through unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat-completion request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name as the host's model table knows it (the provider maps it to
    /// its own id). Empty: the default model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequences (one string or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Whether the caller wants a stream of chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"include_usage": true}` asks for a final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    /// `{"type": "json_object"}` (JSON mode) or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Tool (function) definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// DeepSeek thinking mode, e.g. `{"type": "enabled"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// DeepSeek reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// End-user id (also selects the plugin session when no session id is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Everything else, passed through unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// Whether a stream should end with a usage chunk
    /// (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A request with one user message.
    pub fn user(text: impl Into<String>) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new("user", text)],
            ..ChatRequest::default()
        }
    }

    /// The stop sequences as a list (empty when none).
    pub fn stop_sequences(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        }
    }

    /// For `response_format: {"type": "json_schema", "json_schema": {"schema":
    /// {...}}}`: the top-level `required` keys of the schema, in order (empty
    /// for plain JSON mode or no schema).
    pub fn json_required_keys(&self) -> Vec<String> {
        let Some(format) = &self.response_format else {
            return Vec::new();
        };
        if format.get("type").and_then(Value::as_str) != Some("json_schema") {
            return Vec::new();
        }
        format
            .pointer("/json_schema/schema/required")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether JSON mode (or a JSON schema) was asked for.
    pub fn wants_json(&self) -> bool {
        self.response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_object" || t == "json_schema")
    }
}

/// `stop`: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// One message of a conversation (also the message of a response choice).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts; absent on tool-call-only messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// A reasoning model's chain of thought (DeepSeek). Sent back on the next
    /// turn where the API requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls the assistant made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// For `tool` messages: which call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A text message.
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: Some(Content::Text(text.into())),
            ..Message::default()
        }
    }

    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`, images, ...).
    Parts(Vec<Value>),
}

/// A complete (non-streamed, or assembled) response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default = "completion_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered (the provider's id).
    #[serde(default)]
    pub model: String,
    /// The choices (usually one).
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_string()
}

impl ChatResponse {
    /// The first choice's text, or empty.
    pub fn text(&self) -> String {
        self.choices.first().map(|c| c.message.text()).unwrap_or_default()
    }

    /// The response as a stream would have carried it: per choice a chunk
    /// with the role, reasoning and text, then one with the finish reason,
    /// and with `include_usage` a last chunk with the usage and no choices.
    /// [`ChunkAssembler`] folds these back into this response. Used to
    /// stream an answer that had to be complete first (response filters
    /// see the whole answer before any of it leaves).
    pub fn to_chunks(&self, include_usage: bool) -> Vec<ChatChunk> {
        let chunk = |choices: Vec<ChunkChoice>| ChatChunk {
            id: self.id.clone(),
            object: chunk_object(),
            created: self.created,
            model: self.model.clone(),
            choices,
            system_fingerprint: self.system_fingerprint.clone(),
            ..ChatChunk::default()
        };
        let mut chunks = Vec::with_capacity(2 * self.choices.len() + 1);
        for choice in &self.choices {
            let message = &choice.message;
            let text = message.text();
            chunks.push(chunk(vec![ChunkChoice {
                index: choice.index,
                delta: Delta {
                    role: Some(message.role.clone()),
                    content: (!text.is_empty() || message.tool_calls.is_none()).then_some(text),
                    reasoning_content: message.reasoning_content.clone(),
                    // Stream fragments carry their position in `index`.
                    tool_calls: message.tool_calls.as_ref().map(|calls| {
                        calls
                            .iter()
                            .enumerate()
                            .map(|(i, call)| {
                                let mut call = call.clone();
                                if let Some(fields) = call.as_object_mut() {
                                    fields.entry("index").or_insert(Value::from(i));
                                }
                                call
                            })
                            .collect()
                    }),
                    ..Delta::default()
                },
                ..ChunkChoice::default()
            }]));
            chunks.push(chunk(vec![ChunkChoice {
                index: choice.index,
                finish_reason: choice.finish_reason.clone(),
                logprobs: choice.logprobs.clone(),
                ..ChunkChoice::default()
            }]));
        }
        if include_usage {
            chunks.push(ChatChunk {
                usage: self.usage.clone(),
                ..chunk(Vec::new())
            });
        }
        chunks
    }
}

/// One choice of a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The assistant's message.
    pub message: Message,
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// Token accounting, with DeepSeek's cache and reasoning counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Prompt tokens served from the provider's context cache (DeepSeek).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_hit_tokens: Option<u64>,
    /// Prompt tokens not in the cache (DeepSeek).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_miss_tokens: Option<u64>,
    /// `{"reasoning_tokens": N}` for reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Breakdown of generated tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One chunk of a streamed response (`chat.completion.chunk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Response id (the same for every chunk).
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default = "chunk_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Deltas (empty in the final usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Usage, in the last chunk when `stream_options.include_usage` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_string()
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// What was added.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// The increment of a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Role, in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text added (DeepSeek reasoning models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool call fragments (by `index`; `function.arguments` arrive in pieces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Folds stream chunks into the response a non-streamed call would return.
/// Both providers use it, so a stream and a plain call of the same
/// generation yield the same [`ChatResponse`].
#[derive(Debug, Default)]
pub struct ChunkAssembler {
    response: ChatResponse,
}

impl ChunkAssembler {
    /// An empty assembler.
    pub fn new() -> ChunkAssembler {
        ChunkAssembler::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        let r = &mut self.response;
        if r.id.is_empty() {
            r.id = chunk.id.clone();
            r.created = chunk.created;
            r.model = chunk.model.clone();
        }
        if chunk.system_fingerprint.is_some() {
            r.system_fingerprint = chunk.system_fingerprint.clone();
        }
        if chunk.usage.is_some() {
            r.usage = chunk.usage.clone();
        }
        for part in &chunk.choices {
            let index = part.index as usize;
            while r.choices.len() <= index {
                let next = r.choices.len() as u32;
                r.choices.push(Choice {
                    index: next,
                    message: Message {
                        role: "assistant".into(),
                        ..Message::default()
                    },
                    ..Choice::default()
                });
            }
            let choice = &mut r.choices[index];
            let delta = &part.delta;
            if let Some(role) = &delta.role {
                choice.message.role = role.clone();
            }
            if let Some(text) = &delta.content {
                match &mut choice.message.content {
                    Some(Content::Text(existing)) => existing.push_str(text),
                    _ => choice.message.content = Some(Content::Text(text.clone())),
                }
            }
            if let Some(text) = &delta.reasoning_content {
                choice
                    .message
                    .reasoning_content
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            if let Some(calls) = &delta.tool_calls {
                merge_tool_calls(choice.message.tool_calls.get_or_insert_with(Vec::new), calls);
            }
            if part.finish_reason.is_some() {
                choice.finish_reason = part.finish_reason.clone();
            }
        }
    }

    /// The assembled response.
    pub fn finish(self) -> ChatResponse {
        let mut response = self.response;
        if response.object.is_empty() {
            response.object = completion_object();
        }
        response
    }
}

/// Tool call fragments carry an `index`; the first fragment of a call has
/// its id and name, later ones append to `function.arguments`.
fn merge_tool_calls(calls: &mut Vec<Value>, fragments: &[Value]) {
    for fragment in fragments {
        let index = fragment
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(calls.len() as u64) as usize;
        while calls.len() <= index {
            calls.push(serde_json::json!({"type": "function", "function": {"name": "", "arguments": ""}}));
        }
        let call = &mut calls[index];
        for key in ["id", "type"] {
            if let Some(v) = fragment.get(key) {
                call[key] = v.clone();
            }
        }
        if let Some(function) = fragment.get("function") {
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                let existing = call["function"]["name"].as_str().unwrap_or("").to_string();
                call["function"]["name"] = Value::String(existing + name);
            }
            if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                let existing = call["function"]["arguments"].as_str().unwrap_or("").to_string();
                call["function"]["arguments"] = Value::String(existing + args);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_response_replayed_as_chunks_assembles_to_itself() {
        let response: super::ChatResponse = serde_json::from_value(serde_json::json!({
            "id": "r1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hello", "reasoning_content": "hm"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .unwrap();
        let chunks = response.to_chunks(true);
        assert_eq!(chunks.len(), 3);
        assert!(chunks[2].choices.is_empty() && chunks[2].usage.is_some());
        let mut assembler = super::ChunkAssembler::new();
        chunks.iter().for_each(|c| assembler.push(c));
        assert_eq!(assembler.finish(), response);
        assert!(response.to_chunks(false).iter().all(|c| c.usage.is_none()));
    }

    use super::*;

    #[test]
    fn unknown_request_fields_pass_through() {
        let text = r#"{"model":"m","messages":[{"role":"user","content":"hi","x_vendor":1}],"frequency_penalty":0.5,"thinking":{"type":"enabled"}}"#;
        let request: ChatRequest = serde_json::from_str(text).unwrap();
        assert_eq!(request.extra["frequency_penalty"], 0.5);
        assert_eq!(request.messages[0].extra["x_vendor"], 1);
        let back: Value = serde_json::to_value(&request).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn stop_accepts_a_string_or_a_list() {
        let one: ChatRequest = serde_json::from_str(r#"{"messages":[],"stop":"END"}"#).unwrap();
        assert_eq!(one.stop_sequences(), vec!["END"]);
        let many: ChatRequest = serde_json::from_str(r#"{"messages":[],"stop":["a","b"]}"#).unwrap();
        assert_eq!(many.stop_sequences(), vec!["a", "b"]);
    }

    #[test]
    fn deepseek_usage_fields_parse() {
        let usage: Usage = serde_json::from_str(
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_cache_hit_tokens":8,"prompt_cache_miss_tokens":2,"completion_tokens_details":{"reasoning_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(usage.prompt_cache_hit_tokens, Some(8));
        assert_eq!(usage.completion_tokens_details.unwrap().reasoning_tokens, Some(3));
    }

    #[test]
    fn assembler_joins_content_reasoning_tool_calls_and_usage() {
        let chunks = [
            r#"{"id":"1","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"think "}}]}"#,
            r#"{"id":"1","choices":[{"index":0,"delta":{"reasoning_content":"more"}}]}"#,
            r#"{"id":"1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"1","choices":[{"index":0,"delta":{"content":"lo","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}]}"#,
            r#"{"id":"1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"stop"}]}"#,
            r#"{"id":"1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        ];
        let mut assembler = ChunkAssembler::new();
        for chunk in chunks {
            assembler.push(&serde_json::from_str(chunk).unwrap());
        }
        let response = assembler.finish();
        assert_eq!(response.id, "1");
        assert_eq!(response.text(), "Hello");
        let message = &response.choices[0].message;
        assert_eq!(message.reasoning_content.as_deref(), Some("think more"));
        let call = &message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call["id"], "c1");
        assert_eq!(call["function"]["name"], "f");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(response.usage.unwrap().total_tokens, 5);
    }
}
