//! Whom the agent runs as in its VM: the image's `USER` (or the spec's `uid:gid`) resolved against
//! the image's own /etc/passwd and /etc/group, as Docker resolves it for a container:
//! `name`, `uid`, `name:group`, `uid:gid` (names must exist; a numeric id need not, and then has
//! group 0 and home `/`); empty means root.
//!
//! Supplementary groups follow Docker (runc's `GetExecUser`): when the user was found in passwd
//! and no group was named, the agent also gets every group of /etc/group that lists the user's
//! name. The guest's init gets them from busybox `su` (`initgroups`), which adds the primary group
//! to the list as well; that changes no access check, since the primary group is the process's gid.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The home directory from the passwd entry (Docker's HOME when the image sets none).
    pub home: String,
    /// The passwd name whose /etc/group memberships become supplementary groups; `None` when the
    /// user has no passwd entry or a group was named (then the agent has no supplementary groups).
    pub login: Option<String>,
}

impl Identity {
    pub fn root() -> Identity {
        Identity { uid: 0, gid: 0, home: "/root".into(), login: None }
    }
}

struct Entry<'a> {
    name: &'a str,
    id: u32,
    gid: u32,
    home: &'a str,
}

/// `name:x:uid:gid:gecos:home:shell` (passwd) or `name:x:gid:members` (group: no gid/home).
fn entries(file: &str) -> impl Iterator<Item = Entry<'_>> {
    file.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(Entry {
            name: f.first()?,
            id: f.get(2)?.parse().ok()?,
            gid: f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

/// Resolves `user` (Docker's `USER` syntax) with the image's passwd and group files.
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (who, grp) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // No user means root, looked up like any other (its groups come from /etc/group too).
    let who = if who.is_empty() { "0" } else { who };
    let numeric = who.parse::<u32>().ok();
    let found = entries(passwd).find(|e| numeric.map_or(e.name == who, |n| e.id == n));
    let mut identity = match (found, numeric) {
        (Some(e), _) => Identity { uid: e.id, gid: e.gid, home: e.home.to_string(), login: Some(e.name.to_string()) },
        (None, Some(0)) => Identity::root(),
        (None, Some(uid)) => Identity { uid, gid: 0, home: "/".into(), login: None },
        (None, None) => {
            return Err(format!(
                "unable to find user {who}: no matching entries in the image's /etc/passwd (set USER to an existing \
                 user or a numeric uid[:gid])"
            ))
        }
    };
    if identity.home.is_empty() {
        identity.home = "/".into();
    }
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        identity.login = None;
        identity.gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entries(group)
                .find(|e| e.name == g)
                .map(|e| e.id)
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in the image's /etc/group"))?,
        };
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nagent:x:1234:2345::/home/agent:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:agent\n";
    fn plain(uid: u32, gid: u32, home: &str) -> Identity {
        Identity { uid, gid, home: home.into(), login: None }
    }

    #[test]
    fn docker_user_forms() {
        let id = |u: &str| resolve(u, PASSWD, GROUP);
        let agent = Identity { uid: 1234, gid: 2345, home: "/home/agent".into(), login: Some("agent".into()) };
        assert_eq!(id("agent").unwrap(), agent);
        assert_eq!(id("1234").unwrap(), agent);
        // Root is looked up too, so its /etc/group memberships apply (Docker's behaviour).
        assert_eq!(id("").unwrap().login.as_deref(), Some("root"));
        assert_eq!(resolve("", "", "").unwrap(), Identity::root());
        // A named group: that primary group and no supplementary ones.
        assert_eq!(id("agent:staff").unwrap(), Identity { gid: 50, login: None, ..agent.clone() });
        assert_eq!(id("agent:77").unwrap().gid, 77);
        assert_eq!(id("1234:2345").unwrap().login, None);
        assert_eq!(id("4000:4001").unwrap(), plain(4000, 4001, "/"));
        assert_eq!(id("4000").unwrap(), plain(4000, 0, "/"));
        assert!(id("nobody").unwrap_err().contains("unable to find user nobody"));
        assert!(id("agent:wheel").unwrap_err().contains("unable to find group wheel"));
        // A scratch image has no passwd at all: numeric users still work.
        assert_eq!(resolve("1000:1000", "", "").unwrap().uid, 1000);
    }
}
