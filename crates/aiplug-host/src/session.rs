//! Per-(plugin, session) key-value storage behind the host API's
//! `session_get/set/delete`.
//!
//! A small trait so a shared store (Redis) can serve several replicas later;
//! the embedded default keeps everything in process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Atomic: a session ended twice (explicitly and by expiry at once)
    /// reports its plugins once.
    fn end_session(&self, session: &str) -> Result<Vec<String>, SessionError>;
    /// Ends every session unused for `idle` or longer, returning each with
    /// the plugins that had stored something in it. A store whose backend
    /// expires keys by itself may return nothing (its plugins then get no
    /// `on_session_end` for expired sessions).
    fn end_idle_sessions(&self, idle: Duration) -> Result<Vec<(String, Vec<String>)>, SessionError> {
        let _ = idle;
        Ok(Vec::new())
    }
}

/// One session's data: plugin -> key -> value, and when it was last used.
struct Session {
    last_used: Instant,
    scopes: HashMap<String, HashMap<String, Vec<u8>>>,
}

/// The embedded default: an in-process map. State is lost when the process
/// exits and is not shared between replicas. Every access to a session
/// (get, set, delete by any plugin) counts as use for idle expiry.
#[derive(Default)]
pub struct InMemorySessionStore {
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for InMemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.with(|m| m.len());
        f.debug_struct("InMemorySessionStore")
            .field("sessions", &count)
            .finish()
    }
}

impl InMemorySessionStore {
    /// An empty store.
    pub fn new() -> InMemorySessionStore {
        InMemorySessionStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Session>) -> T) -> T {
        // A panic while holding the lock cannot leave a map half-updated in a
        // way that matters here, so recover from poisoning.
        let mut guard = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl SessionStore for InMemorySessionStore {
    fn get(&self, plugin: &str, session: &str, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        Ok(self.with(|m| {
            let entry = m.get_mut(session)?;
            entry.last_used = Instant::now();
            entry.scopes.get(plugin).and_then(|scope| scope.get(key).cloned())
        }))
    }

    fn set(&self, plugin: &str, session: &str, key: &str, value: &[u8]) -> Result<(), SessionError> {
        self.with(|m| {
            let entry = m.entry(session.to_string()).or_insert_with(|| Session {
                last_used: Instant::now(),
                scopes: HashMap::new(),
            });
            entry.last_used = Instant::now();
            entry
                .scopes
                .entry(plugin.to_string())
                .or_default()
                .insert(key.to_string(), value.to_vec());
        });
        Ok(())
    }

    fn delete(&self, plugin: &str, session: &str, key: &str) -> Result<(), SessionError> {
        self.with(|m| {
            if let Some(entry) = m.get_mut(session) {
                entry.last_used = Instant::now();
                if let Some(scope) = entry.scopes.get_mut(plugin) {
                    scope.remove(key);
                }
            }
        });
        Ok(())
    }

    fn end_session(&self, session: &str) -> Result<Vec<String>, SessionError> {
        Ok(self.with(|m| m.remove(session).map(plugins_of).unwrap_or_default()))
    }

    fn end_idle_sessions(&self, idle: Duration) -> Result<Vec<(String, Vec<String>)>, SessionError> {
        let now = Instant::now();
        Ok(self.with(|m| {
            let expired: Vec<String> = m
                .iter()
                .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= idle)
                .map(|(id, _)| id.clone())
                .collect();
            expired
                .into_iter()
                .filter_map(|id| m.remove(&id).map(|s| (id, plugins_of(s))))
                .collect()
        }))
    }
}

/// The plugins that stored something in a session, sorted.
fn plugins_of(session: Session) -> Vec<String> {
    let mut plugins: Vec<String> = session.scopes.into_keys().collect();
    plugins.sort();
    plugins
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
        assert_eq!(
            store.end_session("s1").unwrap(),
            Vec::<String>::new(),
            "ended once"
        );
    }

    #[test]
    fn idle_sessions_end_once_and_use_keeps_them_alive() {
        let store = InMemorySessionStore::new();
        store.set("a", "old", "k", b"1").unwrap();
        store.set("b", "old", "k", b"1").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        store.set("a", "fresh", "k", b"1").unwrap();
        let ended = store.end_idle_sessions(Duration::from_millis(20)).unwrap();
        assert_eq!(
            ended,
            vec![("old".to_string(), vec!["a".to_string(), "b".to_string()])]
        );
        assert!(store
            .end_idle_sessions(Duration::from_millis(20))
            .unwrap()
            .is_empty());
        assert_eq!(store.get("a", "fresh", "k").unwrap().as_deref(), Some(&b"1"[..]));
    }
}
