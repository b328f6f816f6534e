//! Tests of models::local.
