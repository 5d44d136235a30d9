//! Compiles `proto/tollgate/v1/*.proto` with a pure-Rust compiler (protox): no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["tollgate/v1/config.proto", "tollgate/v1/stream.proto"];
    let fds = protox::compile(files, ["../proto"])?;
    tonic_prost_build::configure()
        .build_transport(false)
        // Shared, not copied, by every stream a push goes to.
        .bytes(".tollgate.v1.Push.config")
        .bytes(".tollgate.v1.Delta")
        .bytes(".tollgate.v1.DeltaOp")
        .bytes(".tollgate.v1.Compressed")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
