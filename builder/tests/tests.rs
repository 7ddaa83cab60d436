//! Integration tests of the builder library, one module per area.

mod kernel;
