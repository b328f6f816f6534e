//! `aiplug`: load, verify and run AI plugins from the command line.
//!
//! Exit status: 0 success, 1 a plugin or check failed, 2 usage error.

mod commands;
mod config;
mod output;
mod review;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load, verify, run and hot-swap AI plugins.
///
/// Plugins are directories holding a `plugin.toml` next to their artefact (a
/// shared library with aiplug's C ABI). They are looked for in the
/// directories given by --plugins, else in `[plugins] dirs` of the config
/// file, else in ./plugins.
#[derive(Debug, Parser)]
#[command(name = "aiplug", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (default: ./aiplug.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A directory of plugin directories; repeat for several. Overrides the
    /// config file.
    #[arg(long = "plugins", global = true, value_name = "DIR")]
    plugins: Vec<PathBuf>,
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Development mode: load plugins without a valid signature from a
    /// trusted key (same as `[trust] allow_unsigned = true`). Never in
    /// production.
    /// AIPLUG_ALLOW_UNSIGNED takes 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        global = true,
        env = "AIPLUG_ALLOW_UNSIGNED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    allow_unsigned: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, inspect, sign, verify plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run every load stage on a plugin and print a table: stage, result,
    /// root cause, how to fix. Exits 1 when a stage fails.
    ///
    /// The plugin's on_load runs (and on_unload after), exactly as when the
    /// host loads it. The table ends with the sha256 to pin in plugin.toml.
    Doctor {
        /// A plugin directory or its plugin.toml.
        path: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call a plugin's `invoke` service by plugin id or task name; print its output.
    ///
    /// Examples:
    ///   aiplug run go-format main.go
    ///   git show HEAD:main.go | aiplug run go-format
    ///   aiplug run word-count --text "three small words"
    #[command(verbatim_doc_comment)]
    Run {
        /// Plugin id or task name.
        target: String,
        /// Input file; `-` or nothing reads standard input.
        #[arg(value_name = "INPUT|-", conflicts_with = "text")]
        input: Option<PathBuf>,
        /// Use this text as the input instead of a file.
        #[arg(long)]
        text: Option<String>,
        /// Session id (scopes the plugin's session store).
        #[arg(long)]
        session: Option<String>,
        /// Give up after this many milliseconds (the plugin's own
        /// limits.timeout_ms applies too, whichever is sooner).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// Run the request filters (on_request hooks, highest priority first)
    /// over an OpenAI-style chat request and print the request the model
    /// would get. Exits 1 when a filter rejects it.
    Filter {
        /// JSON request file; `-` or nothing reads standard input.
        #[arg(value_name = "REQUEST|-")]
        input: Option<PathBuf>,
        /// Session id.
        #[arg(long)]
        session: Option<String>,
    },
    /// List the configured models, or fetch one.
    ///
    /// With no DEEPSEEK_API_KEY the default model is the local SmolLM2
    /// (`aiplug models pull smollm2` fetches it); with the key set it is
    /// DeepSeek's chat model. `default_model` and `[models.NAME]` in
    /// aiplug.toml change both.
    Models {
        #[command(subcommand)]
        command: Option<ModelsCommand>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a model once, through the plugins' filters; print the answer.
    Infer {
        /// The prompt; `-` or nothing reads standard input.
        prompt: Option<String>,
        #[command(flatten)]
        generation: GenerationArgs,
        /// Print the raw response JSON (with --stream: one chunk per line).
        #[arg(long)]
        json: bool,
        /// Print the answer as it is generated.
        #[arg(long)]
        stream: bool,
    },
    /// Review code with a model, like a compiler's diagnostics; for
    /// terminals and CI.
    ///
    /// Findings are checked against the file before they are shown (a line
    /// outside the file, or code the file does not contain, is dropped and
    /// counted). Exit status: 0 clean, 1 findings at or above --fail-on,
    /// 2 usage or runtime error.
    ///
    /// Examples:
    ///   aiplug review examples/buggy.go
    ///   git diff origin/main | aiplug review --diff --format sarif > review.sarif
    ///   aiplug review --format rdjsonl src/*.go | reviewdog -f=rdjsonl -reporter=github-pr-review
    #[command(verbatim_doc_comment)]
    Review {
        /// Files to review; with --diff, unified diff files (`-` or none: stdin).
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Review a unified diff (git diff output): only added and changed
        /// lines get findings; the files are read from the working tree.
        #[arg(long)]
        diff: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = review::Format::Text)]
        format: review::Format,
        /// Exit 1 when a finding is at least this severe.
        #[arg(long, value_enum, default_value_t = review::Severity::Error)]
        fail_on: review::Severity,
        /// Model (see `aiplug models`); default: the configured default.
        #[arg(long, short)]
        model: Option<String>,
        /// The files' language, instead of guessing from the extension.
        #[arg(long)]
        lang: Option<String>,
    },
    /// Talk to a model on the terminal; answers stream as they are generated.
    Chat {
        #[command(flatten)]
        generation: GenerationArgs,
    },
    /// Serve an OpenAI-compatible API with the plugins applied on every call.
    ///
    /// Any OpenAI client works: point its base URL at http://ADDR/v1. Routes:
    ///   POST /v1/chat/completions       request filters, model, response filters (SSE with stream)
    ///   GET  /v1/models
    ///   POST /v1/tasks/TASK             a plugin's invoke service by task (e.g. code-review)
    ///   POST /v1/plugins/ID/invoke      a plugin's invoke service by id
    ///   GET  /admin/plugins             POST /admin/plugins/ID/reload
    ///   GET  /healthz  /readyz  /metrics (Prometheus)
    /// Keys: [server] api_keys / AIPLUG_API_KEYS (Authorization: Bearer KEY),
    /// admin_keys / AIPLUG_ADMIN_KEYS for /admin. With no keys only loopback
    /// clients are served. X-Session-Id (or the request's `user`) selects the
    /// plugin session. The plugin directories are watched: a new plugin
    /// directory loads, changed files load as a new version that replaces the
    /// old one without failing a request, a removed directory unloads.
    /// SIGTERM or Ctrl-C: finish in-flight requests (up to
    /// [server] shutdown_grace_secs), unload plugins, exit.
    #[cfg(feature = "server")]
    #[command(verbatim_doc_comment)]
    Serve {
        /// Address to listen on (default: [server] listen, else 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Do not watch the plugin directories (no hot reload; POST
        /// /admin/plugins/reload still syncs on demand).
        #[arg(long)]
        no_watch: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List the configured models (the default is marked with *).
    List,
    /// Fetch a model into $AIPLUG_HOME/models: a known name (smollm2,
    /// gemma3-270m), a local GGUF path, or an http(s) URL (resumable).
    Pull {
        /// Name, path or URL.
        source: String,
    },
}

/// Model and sampling options of `infer` and `chat`.
#[derive(Debug, Args)]
struct GenerationArgs {
    /// Model name (see `aiplug models`); default: the configured default.
    #[arg(long, short)]
    model: Option<String>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u32>,
    /// Sampling temperature (0: deterministic).
    #[arg(long, value_name = "T")]
    temperature: Option<f32>,
    /// Session id for the plugins' session store.
    #[arg(long)]
    session: Option<String>,
}

impl GenerationArgs {
    fn into_generation(self) -> commands::infer::Generation {
        commands::infer::Generation {
            model: self.model,
            system: self.system,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            session: self.session,
        }
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make an ed25519 key pair for signing plugins: NAME.key (private,
    /// PKCS#8 PEM, mode 0600) and NAME.pub (public, SPKI PEM), in
    /// $AIPLUG_HOME/keys (else ~/.local/share/aiplug/keys) unless --dir says
    /// otherwise. Prints the key id.
    Generate {
        /// The key's name (its file names).
        name: String,
        /// Where to write the pair.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also copy the public key into the trust store (`[trust] keys_dir`,
        /// else $AIPLUG_HOME/trusted-keys or ~/.config/aiplug/trusted-keys),
        /// so this host loads what it signs.
        #[arg(long)]
        trust: bool,
    },
    /// Trust a signer: copy their public key (NAME.pub) into the trust store
    /// (`[trust] keys_dir`, else $AIPLUG_HOME/trusted-keys or
    /// ~/.config/aiplug/trusted-keys). Prints its key id;
    /// trusting the same key again is a no-op.
    Trust {
        /// The public key file (SPKI PEM, as `keys generate` writes).
        public_key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Load the plugin directories and list every plugin: id, version, kind,
    /// hooks, priority, state (failed ones with their diagnosis).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running `aiplug serve` to reload: one plugin (a new version
    /// replaces the old one without failing a request; refused files leave
    /// the old one serving), or with no ID every plugin directory (new ones
    /// load, changed ones reload, removed ones unload).
    ///
    /// The admin key comes from AIPLUG_ADMIN_KEY (needed when the server has
    /// admin keys; without them it accepts loopback clients only).
    Reload {
        /// Plugin id; none: sync every plugin directory.
        id: Option<String>,
        /// The server (default: http:// + [server] listen of the config,
        /// else http://127.0.0.1:8080).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Sign a plugin: writes DIR/plugin.toml.sig, an ed25519 signature over
    /// the exact bytes of plugin.toml (which pins the artefact by sha256, so
    /// the signature covers the code too).
    Sign {
        /// The plugin directory (or its plugin.toml).
        dir: PathBuf,
        /// The private key (from `aiplug keys generate`; mode 0600).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// First write the artefact's current sha256 into plugin.toml (after
        /// a rebuild); without it a missing or stale pin is an error.
        #[arg(long)]
        pin: bool,
    },
    /// Check a plugin's signature and artefact pin against the trust store
    /// (the integrity stage alone). Exits 1 when it would be refused.
    Verify {
        /// The plugin directory (or its plugin.toml).
        dir: PathBuf,
    },
    /// Load one plugin and show everything about it: manifest, artefact
    /// hash, hooks, tasks, limits, capabilities, config.
    Inspect {
        /// A plugin directory or its plugin.toml.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server's log is its record of requests: info by default.
    #[cfg(feature = "server")]
    let serving = matches!(cli.command, Command::Serve { .. });
    #[cfg(not(feature = "server"))]
    let serving = false;
    init_logging(&cli.global, serving);
    let result = match cli.command {
        Command::Plugins(PluginsCommand::List { json }) => commands::plugins::list(&cli.global, json),
        Command::Plugins(PluginsCommand::Inspect { path, json }) => {
            commands::plugins::inspect(&cli.global, &path, json)
        }
        Command::Plugins(PluginsCommand::Sign { dir, key, pin }) => commands::trust::sign(&dir, &key, pin),
        Command::Plugins(PluginsCommand::Verify { dir }) => commands::trust::verify(&cli.global, &dir),
        Command::Keys(KeysCommand::Generate { name, dir, trust }) => {
            commands::trust::generate(&cli.global, &name, dir.as_deref(), trust)
        }
        Command::Keys(KeysCommand::Trust { public_key }) => {
            commands::trust::trust_key(&cli.global, &public_key)
        }
        Command::Plugins(PluginsCommand::Reload { id, server }) => {
            commands::plugins::reload(&cli.global, id.as_deref(), server.as_deref())
        }
        Command::Doctor { path, json } => commands::doctor::run(&cli.global, &path, json),
        Command::Run {
            target,
            input,
            text,
            session,
            timeout_ms,
        } => commands::run::run(&cli.global, &target, input.as_deref(), text, session, timeout_ms),
        Command::Filter { input, session } => commands::run::filter(&cli.global, input.as_deref(), session),
        Command::Models { command, json } => match command {
            None | Some(ModelsCommand::List) => commands::models::list(&cli.global, json),
            Some(ModelsCommand::Pull { source }) => commands::models::pull_model(&source),
        },
        Command::Infer {
            prompt,
            generation,
            json,
            stream,
        } => commands::infer::infer(&cli.global, prompt, generation.into_generation(), json, stream),
        Command::Review {
            paths,
            diff,
            format,
            fail_on,
            model,
            lang,
        } => commands::review::run(
            &cli.global,
            commands::review::ReviewArgs {
                paths,
                diff,
                format,
                fail_on: review::FailOn(fail_on),
                model,
                lang,
            },
        ),
        Command::Chat { generation } => commands::infer::chat(&cli.global, generation.into_generation()),
        #[cfg(feature = "server")]
        Command::Serve { listen, no_watch } => commands::serve::run(&cli.global, listen, !no_watch),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(global: &Global, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match global.verbose {
        0 if serving => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // llama.cpp reports every context it creates at info level: noise in a
    // server's request log unless asked for (-vv or RUST_LOG).
    let default = match default {
        "info" => "info,llama-cpp-2=warn",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
