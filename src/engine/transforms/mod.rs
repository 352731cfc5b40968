//! Transforms that are more than one line of SQL. The rest are planned in `plan.rs`.

pub mod distinct;
mod distinct_keys;
pub mod expectations;
pub mod flatten;
pub mod join;
pub mod parse_json;
