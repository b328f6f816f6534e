//! The `deepseek` provider: the DeepSeek API or any OpenAI-compatible server.
