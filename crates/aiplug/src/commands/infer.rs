//! `aiplug infer` (one shot) and `aiplug chat` (interactive).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use aiplug_host::models::{ChatChunk, ChatRequest, Message};
use aiplug_host::{CallOptions, Host};

use crate::Global;

/// Options shared by `infer` and `chat`.
pub struct Generation {
    /// Model name; `None`: the default.
    pub model: Option<String>,
    /// System prompt.
    pub system: Option<String>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Session id for the plugins.
    pub session: Option<String>,
}

impl Generation {
    fn request(&self, messages: Vec<Message>) -> ChatRequest {
        let mut all = Vec::new();
        if let Some(system) = &self.system {
            all.push(Message::new("system", system.clone()));
        }
        all.extend(messages);
        ChatRequest {
            model: self.model.clone().unwrap_or_default(),
            messages: all,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            ..ChatRequest::default()
        }
    }

    fn options(&self) -> CallOptions {
        let mut options = CallOptions::new();
        options.session_id = self.session.clone();
        options
    }
}

/// Says once, on stderr, which model answers and why.
fn announce(host: &Host, generation: &Generation, reason: &str) {
    if generation.model.is_none() {
        if let Some(name) = host.default_model() {
            eprintln!("model: {name} ({reason})");
        }
    }
}

fn host_with_models(global: &Global) -> anyhow::Result<(Host, String)> {
    let reason = super::model_table(global)?.default_reason;
    let (host, refused) = super::load_host(global)?;
    super::warn_refused(&refused);
    Ok((host, reason))
}

/// `aiplug infer PROMPT`.
pub fn infer(
    global: &Global,
    prompt: Option<String>,
    generation: Generation,
    as_json: bool,
    stream: bool,
) -> anyhow::Result<ExitCode> {
    let prompt = match prompt.filter(|p| p != "-") {
        Some(prompt) => prompt,
        None => String::from_utf8(super::read_input(None)?)?,
    };
    if prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty: pass it as an argument or on standard input");
    }
    let (host, reason) = host_with_models(global)?;
    announce(&host, &generation, &reason);
    let request = generation.request(vec![Message::new("user", prompt)]);
    let mut stdout = std::io::stdout().lock();
    let mut printed = false;
    let mut sink = |chunk: &ChatChunk| {
        if as_json {
            let _ = writeln!(stdout, "{}", serde_json::to_string(chunk).unwrap_or_default());
        } else if let Some(text) = chunk.choices.first().and_then(|c| c.delta.content.as_deref()) {
            let _ = write!(stdout, "{text}");
            let _ = stdout.flush();
            printed = true;
        }
    };
    let result = host.infer(
        &request,
        &generation.options(),
        if stream { Some(&mut sink) } else { None },
    );
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut stdout = std::io::stdout().lock();
    if stream {
        if printed {
            writeln!(stdout)?;
        }
    } else if as_json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&response)?)?;
    } else {
        writeln!(stdout, "{}", response.text())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `aiplug chat`: a conversation on the terminal, answers streamed as they
/// are generated. `/reset` forgets the conversation, `/exit` or end of input
/// quits.
pub fn chat(global: &Global, generation: Generation) -> anyhow::Result<ExitCode> {
    let (host, reason) = host_with_models(global)?;
    announce(&host, &generation, &reason);
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("type a message and press Enter; /reset starts over, /exit (or Ctrl-D) quits");
    }
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", line));
        let request = generation.request(history.clone());
        let mut stdout = std::io::stdout().lock();
        let mut sink = |chunk: &ChatChunk| {
            if let Some(text) = chunk.choices.first().and_then(|c| c.delta.content.as_deref()) {
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
        };
        match host.infer(&request, &generation.options(), Some(&mut sink)) {
            Ok(response) => {
                println!();
                match response.choices.into_iter().next() {
                    Some(choice) => history.push(choice.message),
                    None => history.push(Message::new("assistant", "")),
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                history.pop(); // the turn did not happen
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
