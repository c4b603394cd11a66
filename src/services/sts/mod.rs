//! AWS STS: GetCallerIdentity, AssumeRole and AssumeRoleWithWebIdentity (`api`, awsQuery), and the
//! temporary credentials the emulator issues (`credentials`: to host users through STS and to each
//! session's sandbox through the metadata service), recorded in `tables`.

pub mod api;
pub mod credentials;
pub mod tables;

/// STS's botocore model subset (generated into `model/` by tools/extract_model.py).
pub fn model() -> &'static crate::kernel::model::ServiceModel {
    static MODEL: std::sync::OnceLock<crate::kernel::model::ServiceModel> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| crate::kernel::model::load(include_str!("model/sts.json")))
}
