//! Attacks on the admin API, the Playground, telemetry and what they reveal.
