//! Who a temporary credential speaks for: a role, assumed under a session name.

/// A role, read from its ARN `arn:<partition>:iam::<account>:role/<path/><name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub arn: String,
    pub partition: String,
    pub account: String,
    /// The last segment of the ARN (IAM paths are not part of assumed-role ARNs).
    pub name: String,
}

impl Role {
    /// Parses a role ARN. The account may be empty in an AgentCore `roleArn` (the model allows it):
    /// then the runtime's own account is meant, `default_account`.
    pub fn parse(arn: &str, default_account: &str) -> Option<Role> {
        let mut parts = arn.splitn(6, ':');
        let (scheme, partition, service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if scheme != "arn" || !partition.starts_with("aws") || service != "iam" || !region.is_empty() {
            return None;
        }
        if !(account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        let path_and_name = resource.strip_prefix("role/")?;
        let name = path_and_name.rsplit('/').next().filter(|n| !n.is_empty())?;
        let account = if account.is_empty() { default_account } else { account };
        Some(Role {
            arn: arn.to_string(),
            partition: partition.to_string(),
            account: account.to_string(),
            name: name.to_string(),
        })
    }

    /// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`, what GetCallerIdentity returns.
    pub fn assumed_role_arn(&self, session_name: &str) -> String {
        format!("arn:{}:sts::{}:assumed-role/{}/{session_name}", self.partition, self.account, self.name)
    }

    /// `AROA…:<session name>`, the UserId of an assumed-role session.
    pub fn assumed_role_id(&self, session_name: &str) -> String {
        format!("{}:{session_name}", super::keys::role_id(&self.arn))
    }
}

/// Role session names are 2–64 characters of `[\w+=,.@-]`; a runtime session id (33–256 characters
/// of anything) is made into one by replacing other characters and keeping the first 64.
pub fn session_name_from(id: &str) -> String {
    let mut name: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).take(64).collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_role_arns() {
        let r = Role::parse("arn:aws:iam::111122223333:role/service/AgentRole", "123456789012").unwrap();
        assert_eq!((r.account.as_str(), r.name.as_str()), ("111122223333", "AgentRole"));
        assert_eq!(r.assumed_role_arn("s1"), "arn:aws:sts::111122223333:assumed-role/AgentRole/s1");
        assert!(r.assumed_role_id("s1").starts_with("AROA") && r.assumed_role_id("s1").ends_with(":s1"));
        let r = Role::parse("arn:aws-cn:iam:::role/R", "123456789012").unwrap();
        assert_eq!(r.account, "123456789012");
        assert_eq!(r.assumed_role_arn("x"), "arn:aws-cn:sts::123456789012:assumed-role/R/x");
        for bad in ["arn:aws:iam::1:role/R", "arn:aws:s3:::role/R", "arn:aws:iam::123456789012:user/R", "role/R"] {
            assert!(Role::parse(bad, "123456789012").is_none(), "{bad}");
        }
    }

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(session_name_from("abc:def/ghi"), "abc-def-ghi");
        assert_eq!(session_name_from(&"x".repeat(100)).len(), 64);
        assert_eq!(session_name_from("a"), "a-");
    }
}
