//! Support for tests/monitoring.rs: test nodes scanned by the real binary, its textfile, the
//! promtool unit-test files generated from it, and the names PromQL expressions use.
#![allow(dead_code)]

pub mod names;
pub mod nodes;
pub mod promql;
pub mod promtool;
pub mod textfile;
