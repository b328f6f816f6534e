//! The `local` provider: GGUF models on llama.cpp.
