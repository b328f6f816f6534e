//! Tests of models::pull.
