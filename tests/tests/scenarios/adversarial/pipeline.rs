//! Attacks on the request pipeline: paths, headers, connections.
