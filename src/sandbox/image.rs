//! ECR image URIs and the local image names they may be found under.

/// A parsed `containerUri` of the model's pattern: registry, repository, tag, digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUri {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn parse(uri: &str) -> Option<ContainerUri> {
    let (registry, rest) = uri.split_once('/')?;
    let (before_digest, digest) = match rest.split_once('@') {
        Some((b, d)) => (b, Some(d.to_string())),
        None => (rest, None),
    };
    let (repository, tag) = match before_digest.rsplit_once(':') {
        Some((r, t)) => (r.to_string(), Some(t.to_string())),
        None => (before_digest.to_string(), None),
    };
    if repository.is_empty() {
        return None;
    }
    Some(ContainerUri { registry: registry.to_string(), repository, tag, digest })
}

/// Local names to try, in order: the exact URI as a local tag, then `{repo}:{tag}` (or
/// `{repo}@{digest}`). A URI without tag or digest means `latest`, as Docker reads it.
pub fn local_candidates(uri: &str) -> Vec<String> {
    let mut out = vec![uri.to_string()];
    if let Some(p) = parse(uri) {
        let short = match (&p.digest, &p.tag) {
            (Some(d), _) => format!("{}@{d}", p.repository),
            (None, Some(t)) => format!("{}:{t}", p.repository),
            (None, None) => format!("{}:latest", p.repository),
        };
        if let (Some(_), Some(t)) = (&p.digest, &p.tag) {
            out.push(format!("{}:{t}", p.repository));
        }
        out.push(short);
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_uris_map_to_local_names() {
        assert_eq!(
            local_candidates("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/agent:v1"),
            vec!["123456789012.dkr.ecr.us-east-1.amazonaws.com/team/agent:v1", "team/agent:v1"]
        );
        assert_eq!(
            local_candidates("123456789012.dkr.ecr.us-east-1.amazonaws.com/agent"),
            vec!["123456789012.dkr.ecr.us-east-1.amazonaws.com/agent", "agent:latest"]
        );
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            local_candidates(&format!("public.ecr.aws/x/agent:v2@{d}"))[1..],
            ["x/agent:v2".to_string(), format!("x/agent@{d}")]
        );
    }
}
