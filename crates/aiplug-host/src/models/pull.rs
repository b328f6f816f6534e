//! `aiplug models pull`: fetching model files into the models directory.
