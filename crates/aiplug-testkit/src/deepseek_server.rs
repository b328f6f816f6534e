//! A local server speaking the DeepSeek chat-completions protocol, for tests.
