//! Test support: deterministic OCI image layouts and tar layers for the demo and the suite.
