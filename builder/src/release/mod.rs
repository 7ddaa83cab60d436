//! Releases: publishing a build output to an OCI registry and fetching it back.
//!
//! [`layout`] defines the artifact (media types, the release and referrer manifests: pure
//! functions of the files), [`reference`] parses `HOST/REPO[:TAG][@sha256:...]`, [`auth`]
//! finds credentials where container tools keep them, [`registry`] is the only module that
//! touches the network, and [`publish`] sequences `push` and `pull`.

pub mod auth;
pub mod layout;
pub mod publish;
pub mod reference;
pub mod registry;
