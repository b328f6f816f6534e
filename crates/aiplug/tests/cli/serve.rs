//! `aiplug serve` driven over HTTP the way a client drives it.
