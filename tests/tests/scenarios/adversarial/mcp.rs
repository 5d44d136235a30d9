//! Attacks on MCP routes: foreign origins, session and child exhaustion, inherited secrets.
