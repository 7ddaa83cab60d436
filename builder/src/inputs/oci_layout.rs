//! OCI image layout reader (placeholder: being implemented).
