//! `enclave-builder measure ...` (placeholder: being implemented).
