//! Tests of models::deepseek.
