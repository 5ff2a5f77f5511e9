//! (being built)

/// stub
pub fn decide() {}
