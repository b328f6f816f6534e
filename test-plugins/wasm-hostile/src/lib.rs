//! `test-wasm-hostile`: a wasm plugin that attacks its sandbox in the way
//! `[config] mode` says, once `invoke` is called:
//!
//! - `"normal"`: echoes its input (proves the host still serves afterwards).
//! - `"loop"`: spins forever without polling cancellation.
//! - `"grow"`: allocates 1 MiB blocks until memory runs out.
//! - `"trap"`: executes `unreachable` (an abort).
//! - `"panic"`: panics with a message.
//! - `"open-file"`: reads `/etc/passwd` (no filesystem is ever granted).
//! - `"socket"`: connects to the TCP address given as input (no network
//!   unless `[capabilities] wasi = ["network"]`).
//!
//! Built with `--features bad-import` it also imports a host function that
//! does not exist; with `--no-default-features --features world-v9` it
//! exports an `aiplug:plugin` world version no host supports.

#[cfg(feature = "sdk")]
mod plugin {
    use aiplug_sdk::{export_plugin, Context, Error, Hooks, Plugin};

    /// The misbehaving plugin.
    pub struct Hostile {
        mode: String,
    }

    impl Plugin for Hostile {
        const ID: &'static str = "test-wasm-hostile";
        const VERSION: &'static str = "0.1.0";
        const TASKS: &'static [&'static str] = &["attack"];
        const HOOKS: Hooks = Hooks::INVOKE;

        fn load(_ctx: &Context<'_>, config_json: &str) -> Result<Self, Error> {
            // No serde: keep the component small. The config is {"mode":"…"}.
            let mode = config_json
                .split("\"mode\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("normal")
                .to_string();
            Ok(Hostile { mode })
        }

        fn invoke(&self, _ctx: &Context<'_>, input: &[u8]) -> Result<Vec<u8>, Error> {
            #[cfg(feature = "bad-import")]
            if self.mode == "bad-import" {
                return Ok(super::extra::aiplug::extras::secrets::read_keys().into_bytes());
            }
            match self.mode.as_str() {
                "loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "grow" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "trap" => std::process::abort(),
                "panic" => panic!("configured to panic"),
                "open-file" => match std::fs::read_to_string("/etc/passwd") {
                    Ok(text) => Ok(format!("READ {} bytes", text.len()).into_bytes()),
                    Err(e) => Err(Error::new(format!("open /etc/passwd: {e}"))),
                },
                "socket" => {
                    let addr = String::from_utf8_lossy(input).to_string();
                    match std::net::TcpStream::connect(addr.as_str()) {
                        Ok(_) => Ok(format!("CONNECTED to {addr}").into_bytes()),
                        Err(e) => Err(Error::new(format!("connect {addr}: {e}"))),
                    }
                }
                _ => Ok(input.to_vec()),
            }
        }
    }

    export_plugin!(Hostile);
}

#[cfg(all(feature = "bad-import", target_arch = "wasm32"))]
mod extra {
    wit_bindgen::generate!({
        inline: "
            package aiplug:extras@0.1.0;
            interface secrets { read-keys: func() -> string; }
            world extras { import secrets; }
        ",
        world: "extras",
    });
}

#[cfg(all(feature = "world-v9", not(feature = "sdk"), target_arch = "wasm32"))]
mod v9 {
    wit_bindgen::generate!({
        inline: "
            package aiplug:plugin@9.0.0;
            interface guest { hello: func() -> string; }
            world plugin { export guest; }
        ",
        world: "plugin",
    });

    struct Future;

    impl exports::aiplug::plugin::guest::Guest for Future {
        fn hello() -> String {
            "from the future".into()
        }
    }

    export!(Future);
}
