//! Integration tests: one binary, real pipelines on real Delta tables in temp dirs.

mod batch;
mod cli;
mod common;
mod errors;
mod interop;
mod projects;
