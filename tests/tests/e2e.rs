//! The one end-to-end test binary: every scenario starts real processes on free ports.

mod scenarios;
