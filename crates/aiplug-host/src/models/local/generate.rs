//! One chat completion on a loaded model: prompt, sampling, the token loop
//! and the chunks it streams.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::sampling::LlamaSampler;

use super::sampling::Sampling;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;
use serde_json::{json, Value};

use super::json::JsonCloser;
use super::shared::{ContextShape, SharedModel};
use super::text::{Filtered, StopFilter, Utf8Decoder};
use crate::models::slots::{stop_reason, Slots};
use crate::models::wire::{ChunkChoice, Delta};
use crate::models::{
    ChatChunk, ChatRequest, ChatResponse, ChunkAssembler, ChunkSink, ModelCall, ModelError, Usage,
};

/// Sampling defaults, llama-server's: a small local model rambles at the
/// OpenAI default temperature of 1.
pub(crate) const DEFAULT_TEMPERATURE: f32 = 0.8;
pub(crate) const DEFAULT_TOP_P: f32 = 0.95;
pub(crate) const DEFAULT_TOP_K: i32 = 40;
/// Prompt tokens decoded per `llama_decode` call (and per physical batch);
/// cancellation is checked between batches.
const BATCH: u32 = 512;

/// The JSON grammar, its top-level object starting with `keys` in order
/// when a schema names required keys (so a small model answers in the
/// asked-for shape). Keys outside `[A-Za-z0-9_-]` fall back to any object.
pub(crate) fn json_grammar(keys: &[String]) -> String {
    let plain = |k: &String| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if keys.is_empty() || !keys.iter().all(plain) {
        return JSON_GRAMMAR.to_string();
    }
    let members: Vec<String> = keys
        .iter()
        .map(|k| format!(r#""\"{k}\"" ws ":" ws value"#))
        .collect();
    let root = format!(
        r#"root ::= "{{" ws {} ("," ws string ":" ws value)* "}}" ws"#,
        members.join(r#" "," ws "#)
    );
    JSON_GRAMMAR.replacen("root   ::= object", &root, 1)
}

/// JSON mode's grammar: llama.cpp's `grammars/json.gbnf` (an object at the
/// top level; strings without raw control characters; bounded whitespace,
/// so a small model cannot pad forever).
pub(crate) const JSON_GRAMMAR: &str = r#"
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

ws ::= | " " | "\n" [ \t]{0,20}
"#;

/// What a request asks of the sampler and the loop, validated.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) max_tokens: Option<u32>,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) top_k: i32,
    pub(crate) seed: u32,
    pub(crate) json: bool,
    /// With a JSON schema: its top-level required keys, which the grammar
    /// then puts first and in order (values stay any JSON).
    pub(crate) json_keys: Vec<String>,
    pub(crate) stops: Vec<String>,
    pub(crate) ignore_eos: bool,
    pub(crate) include_usage: bool,
}

impl Plan {
    /// Checks `request` and reads its sampling settings.
    pub(crate) fn of(request: &ChatRequest) -> Result<Plan, ModelError> {
        let bad = |m: &str| Err(ModelError::BadRequest(m.to_string()));
        if request.messages.is_empty() {
            return bad("messages is empty: send at least one message");
        }
        if request.max_tokens == Some(0) {
            return bad("max_tokens must be at least 1");
        }
        let temperature = request.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if !(0.0..=100.0).contains(&temperature) {
            return bad("temperature must be between 0 and 100 (0: greedy)");
        }
        let top_p = request.top_p.unwrap_or(DEFAULT_TOP_P);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return bad("top_p must be greater than 0 and at most 1");
        }
        if request.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return bad("the local provider does not support tools; send the request without `tools`");
        }
        if request
            .extra
            .get("n")
            .and_then(Value::as_u64)
            .is_some_and(|n| n != 1)
        {
            return bad("the local provider generates one choice: n must be 1");
        }
        let top_k = match request.extra.get("top_k") {
            None | Some(Value::Null) => DEFAULT_TOP_K,
            Some(v) => match v.as_i64() {
                Some(k) if k >= 0 => k.min(i64::from(i32::MAX)) as i32,
                _ => return bad("top_k must be a whole number, at least 0 (0: no limit)"),
            },
        };
        let seed = match request.extra.get("seed") {
            None | Some(Value::Null) => fastrand::u32(..),
            // OpenAI seeds are 64-bit; llama.cpp's are 32.
            Some(v) => match v.as_i64().map(|s| s as u64).or_else(|| v.as_u64()) {
                Some(s) => (s ^ (s >> 32)) as u32,
                None => return bad("seed must be an integer"),
            },
        };
        // In JSON mode the end of the object is where generation must end:
        // the grammar then allows nothing but end-of-generation.
        let ignore_eos = !request.wants_json()
            && request
                .extra
                .get("ignore_eos")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Plan {
            max_tokens: request.max_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            json: request.wants_json(),
            json_keys: request.json_required_keys(),
            stops: request.stop_sequences(),
            ignore_eos,
            include_usage,
        })
    }
}

/// The prompt text for `request`: the model's chat template, or for a model
/// without a usable one the messages' texts joined by blank lines (a plain
/// completion prompt the model continues).
pub(crate) fn render_prompt(model: &SharedModel, request: &ChatRequest) -> Result<String, ModelError> {
    let Some(template) = &model.template else {
        let texts: Vec<String> = request.messages.iter().map(|m| m.text()).collect();
        return Ok(texts.join("\n\n"));
    };
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let chat = LlamaChatMessage::new(message.role.clone(), message.text()).map_err(|_| {
            ModelError::BadRequest(format!(
                "message {i} contains a NUL character, which a prompt cannot hold"
            ))
        })?;
        messages.push(chat);
    }
    model
        .model
        .apply_chat_template(template, &messages, true)
        .map_err(|e| {
            ModelError::BadRequest(format!(
                "the model's chat template cannot render these messages: {e}"
            ))
        })
}

/// The prompt's tokens.
pub(crate) fn tokenize(model: &SharedModel, prompt: &str) -> Vec<LlamaToken> {
    let vocab = model.model.vocab();
    // A chat template writes special tokens as text; a plain prompt is
    // the user's text and must not smuggle them in.
    let mut tokens = vocab.tokenize(prompt.as_bytes(), true, model.template.is_some());
    // Templates that write the BOS themselves would get a second one.
    if tokens.len() >= 2 && tokens[0] == tokens[1] && tokens[0] == vocab.bos() {
        tokens.remove(0);
    }
    tokens
}

/// Everything one call needs.
pub(crate) struct Job<'a> {
    pub(crate) model: &'a SharedModel,
    /// The name requests use (for errors).
    pub(crate) name: &'a str,
    /// The id written into responses (the file name).
    pub(crate) upstream: &'a str,
    pub(crate) context_length: u32,
    pub(crate) threads: i32,
    pub(crate) flash_attention: i32,
    pub(crate) slots: &'a Slots,
}

impl Job<'_> {
    pub(crate) fn run(
        &self,
        request: &ChatRequest,
        plan: &Plan,
        call: ModelCall<'_>,
        stream: Option<ChunkSink<'_>>,
    ) -> Result<ChatResponse, ModelError> {
        let started = Instant::now();
        let prompt = render_prompt(self.model, request)?;
        let tokens = tokenize(self.model, &prompt);
        if tokens.is_empty() {
            return Err(ModelError::BadRequest("the prompt is empty".into()));
        }
        let n_prompt = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        if n_prompt >= self.context_length {
            return Err(ModelError::ContextOverflow {
                model: self.name.to_string(),
                prompt_tokens: n_prompt,
                context: self.context_length,
            });
        }
        let room = self.context_length - n_prompt;
        let budget = plan.max_tokens.map_or(room, |m| m.min(room));

        let _slot = self.slots.acquire(call)?;
        // The KV cache is sized for this request, not the model's whole
        // context: a short chat costs a short cache.
        let n_ctx = (n_prompt + budget)
            .div_ceil(256)
            .saturating_mul(256)
            .min(self.context_length);
        let shape = ContextShape {
            n_ctx,
            n_batch: BATCH.min(n_ctx),
            threads: self.threads,
            flash_attention: self.flash_attention,
        };
        let mut ctx = self
            .model
            .new_context(shape)
            .map_err(|e| self.failed(format!("cannot create a context of {n_ctx} tokens: {e}")))?;
        let n_ctx = ctx.n_ctx();

        // The prompt, a batch at a time; logits for its last token only.
        let mut batch = LlamaBatch::new(shape.n_batch as usize, 1);
        let last = tokens.len() - 1;
        for (b, chunk) in tokens.chunks(shape.n_batch as usize).enumerate() {
            if let Some(error) = stop_reason(call) {
                return Err(error);
            }
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let pos = b * shape.n_batch as usize + i;
                batch
                    .add(*token, pos as i32, &[0], pos == last)
                    .map_err(|e| self.failed(format!("batch: {e}")))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| self.failed(format!("decoding the prompt: {e}")))?;
        }
        let prompt_done = Instant::now();

        let mut sampler = self.sampler(plan)?;
        let vocab = self.model.model.vocab();
        let mut out = Emitter::new(self.upstream, stream, plan.json);
        out.send(
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );

        let mut decoder = Utf8Decoder::default();
        let mut filter = StopFilter::new(plan.stops.clone());
        let mut piece = Vec::with_capacity(32);
        let mut text = String::new();
        let mut generated = 0u32;
        let mut pos = n_prompt;
        let finish = loop {
            if let Some(error) = stop_reason(call) {
                return Err(error);
            }
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break "stop";
            }
            generated += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            text.clear();
            decoder.push(&piece, &mut text);
            match filter.push(&text) {
                Filtered::Text(shown) => out.content(shown),
                Filtered::Stop(shown) => {
                    out.content(shown);
                    break "stop_string";
                }
            }
            if generated >= budget || pos >= n_ctx {
                break "length";
            }
            batch.clear();
            batch
                .add(token, pos as i32, &[0], true)
                .map_err(|e| self.failed(format!("batch: {e}")))?;
            ctx.decode(&mut batch)
                .map_err(|e| self.failed(format!("decoding: {e}")))?;
            pos += 1;
        };
        let finish = if finish == "stop_string" {
            "stop"
        } else {
            // Release what was held: bytes of an unfinished character, and
            // text that could have begun a stop string (it can still be one).
            text.clear();
            decoder.finish(&mut text);
            let (rest, stopped) = match filter.push(&text) {
                Filtered::Text(t) => (t + &filter.finish(), false),
                Filtered::Stop(t) => (t, true),
            };
            out.content(rest);
            if stopped {
                "stop"
            } else {
                finish
            }
        };
        // JSON cut short (by max_tokens, the context or a stop string) is
        // closed so that it parses; finish_reason still tells.
        out.close_json();
        let done = Instant::now();

        out.send(Delta::default(), Some(finish));
        let usage = Usage {
            prompt_tokens: u64::from(n_prompt),
            completion_tokens: u64::from(generated),
            total_tokens: u64::from(n_prompt + generated),
            ..Usage::default()
        };
        out.usage(usage, plan.include_usage);
        let mut response = out.finish();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        response.extra.insert(
            "timings".into(),
            json!({
                "prompt_n": n_prompt,
                "prompt_ms": ms(prompt_done - started),
                "predicted_n": generated,
                "predicted_ms": ms(done - prompt_done),
                // Tokens whose unconstrained pick the JSON grammar refused.
                "grammar_resampled": sampler.resampled,
            }),
        );
        Ok(response)
    }

    fn sampler(&self, plan: &Plan) -> Result<Sampling, ModelError> {
        let model = &self.model.model;
        let mut chain = Vec::new();
        if plan.ignore_eos {
            let biases: Vec<LlamaLogitBias> = self
                .model
                .eog_tokens()
                .iter()
                .map(|t| LlamaLogitBias::new(*t, f32::NEG_INFINITY))
                .collect();
            chain.push(LlamaSampler::logit_bias(model.n_vocab(), &biases));
        }
        let grammar = if plan.json {
            Some(
                LlamaSampler::grammar(model, &json_grammar(&plan.json_keys), "root")
                    .map_err(|e| self.failed(format!("the JSON grammar did not load: {e}")))?,
            )
        } else {
            None
        };
        if plan.temperature == 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if plan.top_k > 0 {
                chain.push(LlamaSampler::top_k(plan.top_k));
            }
            chain.push(LlamaSampler::top_p(plan.top_p, 1));
            chain.push(LlamaSampler::temp(plan.temperature));
            chain.push(LlamaSampler::dist(plan.seed));
        }
        Ok(Sampling::new(LlamaSampler::chain_simple(chain), grammar))
    }

    fn failed(&self, message: String) -> ModelError {
        ModelError::Provider {
            model: self.name.to_string(),
            message: format!("llama.cpp: {message}"),
        }
    }
}

/// Builds chunks, hands them to the caller's sink and folds them into the
/// response, so a streamed and a plain call return the same thing.
struct Emitter<'s> {
    id: String,
    created: u64,
    model: String,
    sink: Option<ChunkSink<'s>>,
    assembler: ChunkAssembler,
    /// Follows the content in JSON mode.
    json: Option<JsonCloser>,
}

impl<'s> Emitter<'s> {
    fn new(model: &str, sink: Option<ChunkSink<'s>>, json: bool) -> Emitter<'s> {
        Emitter {
            id: format!("chatcmpl-{:016x}", fastrand::u64(..)),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: model.to_string(),
            sink,
            assembler: ChunkAssembler::new(),
            json: json.then(JsonCloser::default),
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            ..ChatChunk::default()
        }
    }

    fn send(&mut self, delta: Delta, finish: Option<&str>) {
        let chunk = self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_string),
                logprobs: None,
            }],
            None,
        );
        self.emit(&chunk, true);
    }

    fn content(&mut self, text: String) {
        if let Some(closer) = self.json.as_mut() {
            closer.push_str(&text);
        }
        if !text.is_empty() {
            self.send(
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
            );
        }
    }

    /// Completes unfinished JSON (JSON mode only).
    fn close_json(&mut self) {
        if let Some(closer) = self.json.take() {
            self.content(closer.completion());
        }
    }

    /// The usage chunk: always folded into the response, streamed only when
    /// asked for (`stream_options.include_usage`).
    fn usage(&mut self, usage: Usage, stream_it: bool) {
        let chunk = self.chunk(Vec::new(), Some(usage));
        self.emit(&chunk, stream_it);
    }

    fn emit(&mut self, chunk: &ChatChunk, stream_it: bool) {
        self.assembler.push(chunk);
        if stream_it {
            if let Some(sink) = self.sink.as_mut() {
                sink(chunk);
            }
        }
    }

    fn finish(self) -> ChatResponse {
        let mut response = self.assembler.finish();
        response.object = "chat.completion".into();
        response
    }
}

#[cfg(test)]
mod grammar_tests {
    use super::json_grammar;

    #[test]
    fn required_keys_lead_the_top_level_object() {
        let grammar = json_grammar(&["findings".to_string()]);
        assert!(
            grammar.contains(r#"root ::= "{" ws "\"findings\"" ws ":" ws value"#),
            "{grammar}"
        );
        assert_eq!(json_grammar(&[]), super::JSON_GRAMMAR);
        assert_eq!(json_grammar(&["a b".to_string()]), super::JSON_GRAMMAR);
    }
}
