//! Time series with no I/O (issue 16): how samples are stored and aggregated, apart from how
//! they replicate and where they live.
//!
//! - [`chunk`]: samples in compressed chunks, as Gorilla (Pelkonen et al., VLDB 2015) stores
//!   them: timestamps as delta-of-deltas, values as the XOR with the previous value. A regular
//!   series costs a bit per timestamp and a few bits per slowly moving value; a chunk records
//!   its first and last timestamps so a range read decodes only the chunks it needs.
//! - [`aggregate`]: the aggregators of RedisTimeSeries (`avg sum min max range count first last
//!   std.p std.s var.p var.s twa`) over buckets aligned as `TS.RANGE ... ALIGN ...
//!   AGGREGATION ... BUCKETTIMESTAMP ... EMPTY` aligns them.
//! - [`series`]: a window of a series as a CRDT (the union of stamped writes and range
//!   deletes, read under the duplicate policy the same way everywhere), stored with its stamps
//!   bit-packed beside the samples.
//! - [`fuse`]: the reducers that fuse a group of series into one (median, trimmed and
//!   inverse-variance weighted means beside RedisTimeSeries's).
//! - [`header`]: a series' settings, labels and rules as last-writer-wins registers.
//! - [`args`]: the commands' options (`TS.CREATE`, `TS.RANGE`, `FILTER` expressions), parsed,
//!   with RedisTimeSeries's error texts.
#![deny(missing_docs)]

pub mod aggregate;
pub mod args;
pub mod chunk;
pub mod fuse;
pub mod header;
pub mod series;

/// One reading: milliseconds since the Unix epoch, and its value.
pub type Sample = (i64, f64);
