//! vTPM PCRs (placeholder: being implemented).
