//! Whom the agent runs as in its VM: the image's `USER` (or the spec's `uid:gid`) resolved against
//! the image's own /etc/passwd and /etc/group, as Docker resolves it for a container:
//! `name`, `uid`, `name:group`, `uid:gid` (names must exist; a numeric id need not, and then has
//! group 0 and home `/`); empty means root.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The home directory from the passwd entry (Docker's HOME when the image sets none).
    pub home: String,
}

impl Identity {
    pub fn root() -> Identity {
        Identity { uid: 0, gid: 0, home: "/root".into() }
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
    if who.is_empty() && grp.is_none_or(str::is_empty) {
        return Ok(Identity::root());
    }
    let numeric = who.parse::<u32>().ok();
    let found = entries(passwd).find(|e| numeric.map_or(e.name == who, |n| e.id == n));
    let mut identity = match (found, numeric) {
        (Some(e), _) => Identity { uid: e.id, gid: e.gid, home: e.home.to_string() },
        (None, Some(uid)) => Identity { uid, gid: 0, home: "/".into() },
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

    #[test]
    fn docker_user_forms() {
        let id = |u: &str| resolve(u, PASSWD, GROUP);
        assert_eq!(id("").unwrap(), Identity::root());
        assert_eq!(id("agent").unwrap(), Identity { uid: 1234, gid: 2345, home: "/home/agent".into() });
        assert_eq!(id("1234").unwrap().home, "/home/agent");
        assert_eq!(id("agent:staff").unwrap().gid, 50);
        assert_eq!(id("agent:77").unwrap().gid, 77);
        assert_eq!(id("4000:4001").unwrap(), Identity { uid: 4000, gid: 4001, home: "/".into() });
        assert_eq!(id("4000").unwrap().gid, 0);
        assert!(id("nobody").unwrap_err().contains("unable to find user nobody"));
        assert!(id("agent:wheel").unwrap_err().contains("unable to find group wheel"));
        // A scratch image has no passwd at all: numeric users still work.
        assert_eq!(resolve("1000:1000", "", "").unwrap().uid, 1000);
    }
}
