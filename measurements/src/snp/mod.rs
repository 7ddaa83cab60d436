//! AMD SEV-SNP launch digest (placeholder: being implemented).
