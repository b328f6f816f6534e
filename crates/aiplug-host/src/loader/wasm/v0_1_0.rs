//! World `aiplug:plugin@0.1.0` (`wit/since_v0.1.0`): its bindings, its host
//! API on top of [`StoreData`], and the conversion of its types to the
//! host's own at the edge. A later world version gets a sibling module; this
//! one stays as it is so plugins built against 0.1.0 keep loading.

use std::collections::BTreeSet;

use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

use super::{Bound, Guest, GuestMeta, Info, StoreData};
use crate::loader::{FilterOutcome, HookFailure, HookStatus};
use crate::manifest::Hook;

wasmtime::component::bindgen!({
    path: "../../wit/since_v0.1.0",
    world: "plugin",
});

use aiplug::plugin::types::{CallInfo, Error, Hooks, Level};
use exports::aiplug::plugin::guest::Verdict;

/// The world version, as components name it in `aiplug:plugin/guest@…`.
pub(crate) const VERSION: &str = "0.1.0";

/// Adds this version's host API to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<StoreData, HasSelf<StoreData>>(linker, |data| data)
}

/// Type-checks the component's exports against this version.
pub(crate) fn pre(instance_pre: InstancePre<StoreData>) -> wasmtime::Result<Box<dyn Bound>> {
    Ok(Box::new(PluginPre::new(instance_pre)?))
}

impl Bound for PluginPre<StoreData> {
    fn instantiate(&self, store: &mut Store<StoreData>) -> wasmtime::Result<Box<dyn Guest>> {
        Ok(Box::new(PluginPre::instantiate(self, store)?))
    }
}

fn info(info: &Info<'_>) -> CallInfo {
    CallInfo {
        session_id: info.session_id.to_string(),
        request_id: info.request_id.to_string(),
        task: info.task.to_string(),
        deadline_unix_ms: info.deadline_unix_ms,
    }
}

fn failure(error: Error) -> HookFailure {
    let (status, message) = match error {
        Error::Failed(m) => (HookStatus::Failed, m),
        Error::Cancelled(m) => (HookStatus::Cancelled, m),
        Error::Unsupported(m) => (HookStatus::Unsupported, m),
    };
    HookFailure { status, message }
}

type HookResult<T> = wasmtime::Result<Result<T, HookFailure>>;

impl Guest for Plugin {
    fn metadata(&self, store: &mut Store<StoreData>) -> wasmtime::Result<GuestMeta> {
        let meta = self.aiplug_plugin_guest().call_metadata(store)?;
        let hooks: BTreeSet<Hook> = [
            (Hooks::ON_REQUEST, Hook::OnRequest),
            (Hooks::INVOKE, Hook::Invoke),
            (Hooks::ON_RESPONSE, Hook::OnResponse),
            (Hooks::ON_SESSION_END, Hook::OnSessionEnd),
        ]
        .into_iter()
        .filter_map(|(flag, hook)| meta.hooks.contains(flag).then_some(hook))
        .collect();
        Ok(GuestMeta {
            id: meta.id,
            version: meta.version,
            tasks: meta.tasks,
            hooks,
        })
    }

    fn on_load(&self, store: &mut Store<StoreData>, call: &Info<'_>, config_json: &str) -> HookResult<()> {
        let result = self
            .aiplug_plugin_guest()
            .call_on_load(store, &info(call), config_json)?;
        Ok(result.map_err(failure))
    }

    fn on_request(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        request: &str,
    ) -> HookResult<FilterOutcome> {
        let result = self
            .aiplug_plugin_guest()
            .call_on_request(store, &info(call), request)?;
        Ok(match result {
            Ok(Verdict::Pass) => Ok(FilterOutcome::Continue),
            Ok(Verdict::Rewrite(json)) => Ok(FilterOutcome::Rewrite(super::owned(json.into_bytes()))),
            Ok(Verdict::Reject(reason)) => Ok(FilterOutcome::Reject(reason)),
            Err(e) => Err(failure(e)),
        })
    }

    fn invoke(&self, store: &mut Store<StoreData>, call: &Info<'_>, input: &[u8]) -> HookResult<Vec<u8>> {
        let result = self
            .aiplug_plugin_guest()
            .call_invoke(store, &info(call), input)?;
        Ok(result.map_err(failure))
    }

    fn on_response(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        request: &str,
        response: &str,
    ) -> HookResult<Option<Vec<u8>>> {
        let result = self
            .aiplug_plugin_guest()
            .call_on_response(store, &info(call), request, response)?;
        Ok(result.map(|r| r.map(String::into_bytes)).map_err(failure))
    }

    fn on_session_end(
        &self,
        store: &mut Store<StoreData>,
        call: &Info<'_>,
        session_id: &str,
    ) -> HookResult<()> {
        let result = self
            .aiplug_plugin_guest()
            .call_on_session_end(store, &info(call), session_id)?;
        Ok(result.map_err(failure))
    }

    fn on_unload(&self, store: &mut Store<StoreData>, call: &Info<'_>) -> HookResult<()> {
        let result = self.aiplug_plugin_guest().call_on_unload(store, &info(call))?;
        Ok(result.map_err(failure))
    }
}

impl aiplug::plugin::types::Host for StoreData {}

impl aiplug::plugin::host::Host for StoreData {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Error => aiplug_abi::AIPLUG_LOG_ERROR,
            Level::Warn => aiplug_abi::AIPLUG_LOG_WARN,
            Level::Info => aiplug_abi::AIPLUG_LOG_INFO,
            Level::Debug => aiplug_abi::AIPLUG_LOG_DEBUG,
            Level::Trace => aiplug_abi::AIPLUG_LOG_TRACE,
        };
        self.host_log(level, message);
    }

    fn infer(&mut self, model: String, request_json: String) -> Result<String, Error> {
        self.host_infer(&model, request_json.as_bytes())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|f| match f.status {
                HookStatus::Cancelled => Error::Cancelled(f.message),
                _ => Error::Failed(f.message),
            })
    }

    fn session_get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        self.host_session_get(&key)
    }

    fn session_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.host_session_set(&key, &value)
    }

    fn session_delete(&mut self, key: String) -> Result<(), String> {
        self.host_session_delete(&key)
    }

    fn cancelled(&mut self) -> bool {
        self.is_cancelled()
    }
}
