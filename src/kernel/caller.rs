//! Who called: the one caller type every service takes.

/// The caller of an AWS operation: the account of the credentials the request was signed with
/// and the Region of its signature's credential scope (every resource lives in exactly one
/// account and Region), and the access key that signed it, when a signature was verified.
///
/// Built by authentication (`app::auth` for the JSON services, STS and WebSocket upgrades,
/// `services::s3::api::auth` for S3, SigV2 included), or by [`Caller::new`] where a request carries
/// no signature to verify: a bearer token on a JWT-authorized runtime (account and Region from
/// the runtime's ARN), `--auth off`, or work the emulator does for a stored resource's owner.
/// How a runtime's caller authenticated (SigV4 or a bearer token) is `app::auth::Authentication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub region: String,
    /// The access key of a verified signature (it names the assumed role behind temporary
    /// credentials); `None` when no signature was verified.
    pub access_key_id: Option<String>,
}

impl Caller {
    /// A caller known by account and Region only, without a verified signature.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Caller {
        Caller { account: account.into(), region: region.into(), access_key_id: None }
    }

    /// The caller of a request whose signature, by `access_key_id`, verified.
    pub fn signed(account: impl Into<String>, region: impl Into<String>, access_key_id: impl Into<String>) -> Caller {
        Caller { account: account.into(), region: region.into(), access_key_id: Some(access_key_id.into()) }
    }

    /// The partition of the caller's Region (`aws`, `aws-cn`, …), for ARNs.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
    }
}

/// The partition a Region belongs to, as ARNs name it.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(Caller::new("1", "us-east-1").partition(), "aws");
        assert_eq!(Caller::new("1", "cn-north-1").partition(), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-isob-east-1"), "aws-iso-b");
        assert_eq!(Caller::signed("1", "us-east-1", "AKID").access_key_id.as_deref(), Some("AKID"));
    }
}
