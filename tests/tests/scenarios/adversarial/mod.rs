//! Issue 12's attacks, one scenario per finding: each asserts the safe answer (status, bounded
//! memory read from `/proc`, no leaked value) and fails on the code before its fix.

mod admin;
mod llm;
mod mcp;
mod pipeline;
mod tokens;
