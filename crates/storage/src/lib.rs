//! strata-storage
