//! The micro-batch loop: triggers, the checkpoint protocol, idempotent Delta commits, progress.
//!
//! Per batch N: plan each source's offsets and write `offsets/N` (atomically) before reading;
//! read exactly that data; run the transforms; commit each Delta sink with the application
//! transaction `(<query id>/<sink id>, N)`, skipping a sink whose table already has it; write
//! `commits/N`. A restart replays a batch that has offsets but no commit, with the same
//! offsets, so every input record lands exactly once.
//!
//! `runtime` runs the loop, `microbatch` one batch, `progress` is what they report,
//! `quarantine` keeps malformed records and late rows, and `checkpoint` the offsets and
//! commits logs. Stateful streams add `watermark` (event time), `state` (the versioned state
//! store under the checkpoint), `operators` (windowed aggregation, dedup, stream-stream
//! joins) and `stateful`, which runs them inside a batch. The sources they drive are in
//! `sources::stream_source`.

pub mod checkpoint;
mod microbatch;
pub mod operators;
mod progress;
mod purge;
pub(crate) mod quarantine;
mod runtime;
pub mod state;
pub mod stateful;
pub mod watermark;

pub use progress::{
    BadRecordCounts, EventTimeProgress, SourceProgress, StreamProgress, StreamSummary,
};
pub use quarantine::quarantine_schema;
pub use runtime::{CrashPoint, StreamOptions, checkpoint_dir, run_stream};
