//! Per-(plugin, session) key-value storage behind the host API's
//! `session_get/set/delete`.
//!
//! A small trait so a shared store (Redis) can serve several replicas later;
//! the embedded default keeps everything in process.

use std::collections::HashMap;
use std::sync::Mutex;

/// Why a session store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The backing store failed.
    #[error("session store failed: {0}")]
    Backend(String),
}

/// Storage scoped to (plugin, session). Implementations must be safe to call
/// from many threads at once.
pub trait SessionStore: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, plugin: &str, session: &str, key: &str) -> Result<Option<Vec<u8>>, SessionError>;
    /// Stores `value` under `key`, replacing any previous value.
    fn set(&self, plugin: &str, session: &str, key: &str, value: &[u8]) -> Result<(), SessionError>;
    /// Removes `key`; absent keys are fine.
    fn delete(&self, plugin: &str, session: &str, key: &str) -> Result<(), SessionError>;
    /// Drops everything stored for `session` and returns the ids of the
    /// plugins that had stored something in it (they get `on_session_end`).
    fn end_session(&self, session: &str) -> Result<Vec<String>, SessionError>;
}

/// (plugin, session) -> key -> value.
type Scopes = HashMap<(String, String), HashMap<String, Vec<u8>>>;

/// The embedded default: an in-process map. State is lost when the process
/// exits and is not shared between replicas.
#[derive(Debug, Default)]
pub struct InMemorySessionStore {
    scopes: Mutex<Scopes>,
}

impl InMemorySessionStore {
    /// An empty store.
    pub fn new() -> InMemorySessionStore {
        InMemorySessionStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Scopes) -> T) -> T {
        // A panic while holding the lock cannot leave a map half-updated in a
        // way that matters here, so recover from poisoning.
        let mut guard = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl SessionStore for InMemorySessionStore {
    fn get(&self, plugin: &str, session: &str, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        Ok(self.with(|m| {
            m.get(&(plugin.to_string(), session.to_string()))
                .and_then(|scope| scope.get(key).cloned())
        }))
    }

    fn set(&self, plugin: &str, session: &str, key: &str, value: &[u8]) -> Result<(), SessionError> {
        self.with(|m| {
            m.entry((plugin.to_string(), session.to_string()))
                .or_default()
                .insert(key.to_string(), value.to_vec());
        });
        Ok(())
    }

    fn delete(&self, plugin: &str, session: &str, key: &str) -> Result<(), SessionError> {
        self.with(|m| {
            if let Some(scope) = m.get_mut(&(plugin.to_string(), session.to_string())) {
                scope.remove(key);
            }
        });
        Ok(())
    }

    fn end_session(&self, session: &str) -> Result<Vec<String>, SessionError> {
        Ok(self.with(|m| {
            let mut plugins: Vec<String> = m
                .keys()
                .filter(|(_, s)| s == session)
                .map(|(p, _)| p.clone())
                .collect();
            m.retain(|(_, s), _| s != session);
            plugins.sort();
            plugins
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_separate_and_end_session_reports_plugins() {
        let store = InMemorySessionStore::new();
        store.set("a", "s1", "k", b"1").unwrap();
        store.set("b", "s1", "k", b"2").unwrap();
        store.set("a", "s2", "k", b"3").unwrap();
        assert_eq!(store.get("a", "s1", "k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get("b", "s1", "k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(store.get("b", "s2", "k").unwrap(), None);
        store.delete("a", "s1", "k").unwrap();
        assert_eq!(store.get("a", "s1", "k").unwrap(), None);
        assert_eq!(
            store.end_session("s1").unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(store.get("b", "s1", "k").unwrap(), None);
        assert_eq!(store.get("a", "s2", "k").unwrap().as_deref(), Some(&b"3"[..]));
    }
}
