//! The process-wide wasm runtime: one `Engine` (compiled code is shared by
//! every store), one `Linker` holding the host API of every supported world
//! version plus WASI preview 2, and one epoch ticker thread.
//!
//! Time limits use epoch interruption: the ticker bumps the engine's epoch
//! every [`TICK`] while any wasm call is in flight, and each store's epoch
//! callback checks its call's deadline and cancellation token. Compiled code
//! only compares a counter at function entries and loop heads, which is
//! cheaper than fuel, and a deadline is what users state. The ticker parks
//! itself after a second with no call in flight, so an idle host does not
//! wake up a thousand times a second.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use super::StoreData;

/// How often the epoch advances while calls are in flight: a loop that
/// ignores its deadline is stopped within about this much after it.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Ticks without a call in flight before the ticker parks.
const IDLE_TICKS_BEFORE_PARKING: u32 = 1000;

pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreData>,
    ticker: Ticker,
}

struct Ticker {
    active: AtomicUsize,
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

/// Keeps the epoch ticker running while a wasm call is in flight.
pub(crate) struct Active<'a>(&'a Ticker);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, created on first use. An error (the engine or the linker
/// could not be set up) is kept and returned to every later caller.
pub(crate) fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME.get_or_init(create).as_ref().map_err(Clone::clone)
}

fn create() -> Result<Runtime, String> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let engine = Engine::new(&config).map_err(|e| format!("cannot create the wasm engine: {e}"))?;

    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| format!("cannot link WASI preview 2: {e}"))?;
    super::v0_1_0::add_to_linker(&mut linker).map_err(|e| format!("cannot link the host API: {e}"))?;

    let runtime = Runtime {
        engine,
        linker,
        ticker: Ticker {
            active: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            thread: OnceLock::new(),
        },
    };
    Ok(runtime)
}

impl Runtime {
    /// Marks a wasm call in flight (waking the ticker if it parked) until
    /// the guard drops.
    pub(crate) fn enter(&'static self) -> Active<'static> {
        let ticker = &self.ticker;
        ticker.active.fetch_add(1, Ordering::SeqCst);
        let thread = ticker.thread.get_or_init(|| self.spawn_ticker());
        // Pairs with the ticker's store of `parked` before its last look at
        // `active`: either it sees this call, or this call sees it parking.
        if ticker.parked.load(Ordering::SeqCst) {
            thread.unpark();
        }
        Active(ticker)
    }

    fn spawn_ticker(&'static self) -> Thread {
        std::thread::Builder::new()
            .name("aiplug-wasm-epoch".into())
            .spawn(move || self.tick_forever())
            .expect("cannot start the wasm epoch thread")
            .thread()
            .clone()
    }

    fn tick_forever(&self) {
        let ticker = &self.ticker;
        let mut idle = 0u32;
        loop {
            std::thread::sleep(TICK);
            self.engine.increment_epoch();
            if ticker.active.load(Ordering::SeqCst) > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < IDLE_TICKS_BEFORE_PARKING {
                continue;
            }
            ticker.parked.store(true, Ordering::SeqCst);
            if ticker.active.load(Ordering::SeqCst) == 0 {
                // An `unpark` between the store above and this call makes
                // `park` return at once.
                std::thread::park();
            }
            ticker.parked.store(false, Ordering::SeqCst);
            idle = 0;
        }
    }
}
