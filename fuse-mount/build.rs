//! Generates the gRPC code of containerd's diff service and the parts of its content and
//! leases services the differ calls (`proto/`, interface definitions of containerd's published
//! API) with tonic-build, the same tonic and prost as the crate `containerd-snapshots` uses. Needs `protoc` (Debian's protobuf-compiler).
//!
//! `containerd.types.Mount` is not generated: it is the crate `containerd-snapshots`'s, so a
//! snapshotter's mounts and a differ's are one type. The well-known types map to `prost_types`.

fn main() {
    let protos = [
        "proto/containerd/services/diff/v1/diff.proto",
        "proto/containerd/services/content/v1/content.proto",
        "proto/containerd/services/leases/v1/leases.proto",
    ];
    for path in [
        "proto/containerd/services/diff/v1/diff.proto",
        "proto/containerd/services/content/v1/content.proto",
        "proto/containerd/services/leases/v1/leases.proto",
        "proto/containerd/types/descriptor.proto",
        "proto/containerd/types/mount.proto",
        "proto/google/protobuf/any.proto",
        "proto/google/protobuf/empty.proto",
        "proto/google/protobuf/field_mask.proto",
        "proto/google/protobuf/timestamp.proto",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    let built = tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(
            ".containerd.types.Mount",
            "::containerd_snapshots::api::types::Mount",
        )
        .compile(&protos, &["proto"]);
    if let Err(e) = built {
        // A build script reports by failing; the message says what is missing.
        eprintln!(
            "generating containerd's diff and content services failed (is protoc installed?): {e}"
        );
        std::process::exit(1);
    }
}
