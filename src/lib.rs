//! ssod: a single-sign-on session service over gRPC.
//!
//! Data flows one way: a request enters [`grpc`] (validated and converted from proto types
//! into [`domain`] types, with the caller resolved by the authentication layer), is decided
//! by [`service`] (every business rule), and is persisted by a [`store::Store`] (in memory
//! or PostgreSQL). Time comes from a [`clock::Clock`], keys from a [`crypto::KeyRing`]:
//! both are injected so tests control them. [`server`] wires it together with health,
//! reflection, metrics and graceful shutdown; [`config`] is the one typed configuration.

pub mod clock;
pub mod crypto;
pub mod domain;
pub mod service;
pub mod store;

pub mod proto {
    tonic::include_proto!("sso.v1");

    /// Serialised descriptors of the sso.v1 protos and their imports, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sso_descriptor.bin"));
}
