//! strata-protocol
