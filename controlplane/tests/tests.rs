//! Control-plane integration tests.
