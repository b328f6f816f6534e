//! `aiplug serve` driven by the official `openai` Python package.
