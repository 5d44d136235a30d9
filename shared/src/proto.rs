//! Generated types of the config stream (`proto/tollgate/v1`). Only `convert` and the stream
//! endpoints touch them; everything else uses the model.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tollgate.v1");
}
