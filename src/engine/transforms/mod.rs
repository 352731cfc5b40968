//! Transforms that are more than one line of SQL. The rest are planned in `plan.rs`.

pub mod distinct;
mod distinct_keys;
mod distinct_parts;
pub mod expectations;
pub mod flatten;
pub(crate) mod grace_join;
pub mod join;
mod key_bytes;
pub mod parse_json;
mod spill_parts;
