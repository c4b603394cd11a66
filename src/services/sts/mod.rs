//! AWS STS: GetCallerIdentity, AssumeRole and AssumeRoleWithWebIdentity (`api`, awsQuery), and the
//! temporary credentials the emulator issues (`credentials`: to host users through STS and to each
//! session's sandbox through the metadata service), recorded in `tables`.

pub mod api;
pub mod credentials;
pub mod tables;
