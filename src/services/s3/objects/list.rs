//! Listings: ListObjects(V2), ListObjectVersions and ListMultipartUploads share one walk over
//! rows sorted by key that applies the prefix, groups keys by delimiter into common prefixes, and
//! stops after `max` entries (objects and prefixes count alike), reporting where to resume.

use super::error::{S3Error, S3Result};
use super::{owned_bucket, Objects, MAX_LIST_KEYS};
use crate::services::s3::tables::{BucketRow, ObjectRow, UploadRow};

/// The highest code point: appended to a common prefix, it sorts after every key under it.
const AFTER_ALL: char = '\u{10FFFF}';

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    /// Resume after this key or common prefix (marker, start-after, continuation token, key-marker).
    pub marker: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub entries: Vec<T>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned.
    pub next_marker: Option<String>,
    /// The last entry returned, when the listing ended on an entry rather than a prefix.
    pub last_entry: Option<T>,
}

/// Where a walk resumes.
enum From<R> {
    Key { key: String, inclusive: bool },
    Row(R),
}

fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

fn start<R>(req: &ListRequest) -> (From<R>, Option<String>) {
    match req.marker.as_deref() {
        Some(m) if m >= req.prefix.as_str() => {
            let skip = (common_prefix(m, &req.prefix, req.delimiter.as_deref()) == Some(m)).then(|| m.to_string());
            (From::Key { key: m.to_string(), inclusive: false }, skip)
        }
        _ => (From::Key { key: req.prefix.clone(), inclusive: true }, None),
    }
}

fn walk<R: Clone>(
    req: &ListRequest,
    mut from: From<R>,
    mut skip: Option<String>,
    key_of: impl Fn(&R) -> &str,
    mut fetch: impl FnMut(&From<R>, usize) -> crate::kernel::error::Result<Vec<R>>,
) -> crate::kernel::error::Result<Listing<R>> {
    let max = req.max_keys.min(MAX_LIST_KEYS);
    let batch = (max + 1).clamp(100, MAX_LIST_KEYS + 1);
    let mut out = Listing {
        entries: Vec::new(),
        common_prefixes: Vec::new(),
        truncated: false,
        next_marker: None,
        last_entry: None,
    };
    let mut count = 0;
    'fetch: loop {
        let rows = fetch(&from, batch)?;
        let fetched = rows.len();
        for row in rows {
            let key = key_of(&row).to_string();
            from = From::Row(row.clone());
            if !key.starts_with(&req.prefix) {
                // Rows come sorted and start at or after the prefix: past its range.
                break 'fetch;
            }
            if skip.as_deref().is_some_and(|s| key.starts_with(s)) {
                continue;
            }
            if let Some(cp) = common_prefix(&key, &req.prefix, req.delimiter.as_deref()) {
                if count == max {
                    out.truncated = true;
                    break 'fetch;
                }
                let cp = cp.to_string();
                count += 1;
                out.common_prefixes.push(cp.clone());
                out.next_marker = Some(cp.clone());
                out.last_entry = None;
                from = From::Key { key: format!("{cp}{AFTER_ALL}"), inclusive: false };
                skip = Some(cp);
                continue 'fetch;
            }
            if count == max {
                out.truncated = true;
                break 'fetch;
            }
            count += 1;
            out.next_marker = Some(key);
            out.last_entry = Some(row.clone());
            out.entries.push(row);
        }
        if fetched < batch {
            break;
        }
    }
    Ok(out)
}

fn check_max(max: usize) -> usize {
    max.min(MAX_LIST_KEYS)
}

impl Objects {
    /// The latest version of each key (delete markers hidden), as ListObjects and ListObjectsV2 see them.
    pub async fn list_objects(
        &self,
        account: &str,
        bucket: &str,
        mut req: ListRequest,
    ) -> S3Result<(BucketRow, Listing<ObjectRow>)> {
        req.max_keys = check_max(req.max_keys);
        let (account, bucket) = (account.to_string(), bucket.to_string());
        self.store()
            .read(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let (from, skip) = start(&req);
                let listing = walk(
                    &req,
                    from,
                    skip,
                    |r: &ObjectRow| r.key.as_str(),
                    |from, limit| match from {
                        From::Key { key, inclusive } => tx.s3_list_latest(&bucket.name, key, *inclusive, limit),
                        From::Row(r) => tx.s3_list_latest(&bucket.name, &r.key, false, limit),
                    },
                )?;
                Ok(Ok((bucket, listing)))
            })
            .await?
    }

    /// Every version and delete marker, newest first within a key (ListObjectVersions).
    pub async fn list_versions(
        &self,
        account: &str,
        bucket: &str,
        mut req: ListRequest,
        version_id_marker: Option<String>,
    ) -> S3Result<(BucketRow, Listing<ObjectRow>)> {
        req.max_keys = check_max(req.max_keys);
        let (account, bucket) = (account.to_string(), bucket.to_string());
        self.store()
            .read(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let (mut from, skip) = start(&req);
                if let (Some(key), Some(v)) = (req.marker.as_deref(), version_id_marker.as_deref()) {
                    match tx.s3_version(&bucket.name, key, v)? {
                        Some(row) => from = From::Row(row),
                        None if v == super::names::NULL_VERSION => {}
                        None => {
                            return Ok(Err(S3Error::invalid_argument(
                                "Invalid version id specified",
                                "version-id-marker",
                                v,
                            )))
                        }
                    }
                }
                let listing = walk(
                    &req,
                    from,
                    skip,
                    |r: &ObjectRow| r.key.as_str(),
                    |from, limit| match from {
                        From::Key { key, inclusive } => tx.s3_list_versions(&bucket.name, key, None, *inclusive, limit),
                        From::Row(r) => tx.s3_list_versions(&bucket.name, &r.key, Some(r.seq), false, limit),
                    },
                )?;
                Ok(Ok((bucket, listing)))
            })
            .await?
    }

    /// Multipart uploads in progress, by key and upload id (ListMultipartUploads).
    pub async fn list_uploads(
        &self,
        account: &str,
        bucket: &str,
        mut req: ListRequest,
        upload_id_marker: Option<String>,
    ) -> S3Result<(BucketRow, Listing<UploadRow>)> {
        req.max_keys = check_max(req.max_keys);
        let (account, bucket) = (account.to_string(), bucket.to_string());
        self.store()
            .read(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let (mut from, skip) = start(&req);
                if let (Some(key), Some(id)) = (req.marker.as_deref(), upload_id_marker.as_deref()) {
                    from = From::Key { key: key.to_string(), inclusive: false };
                    if let Some(u) = tx.s3_upload(id)? {
                        from = From::Row(u);
                    }
                }
                let listing = walk(
                    &req,
                    from,
                    skip,
                    |u: &UploadRow| u.key.as_str(),
                    |from, limit| match from {
                        From::Key { key, inclusive } => tx.s3_list_uploads(&bucket.name, key, "", *inclusive, limit),
                        From::Row(u) => tx.s3_list_uploads(&bucket.name, &u.key, &u.upload_id, false, limit),
                    },
                )?;
                Ok(Ok((bucket, listing)))
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(keys: &[&str], req: ListRequest) -> Listing<String> {
        let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        let (from, skip) = start(&req);
        walk(
            &req,
            from,
            skip,
            |k: &String| k.as_str(),
            |from, limit| {
                Ok(sorted
                    .iter()
                    .filter(|k| match from {
                        From::Key { key, inclusive: true } => k.as_str() >= key.as_str(),
                        From::Key { key, inclusive: false } => k.as_str() > key.as_str(),
                        From::Row(r) => k.as_str() > r.as_str(),
                    })
                    .take(limit)
                    .cloned()
                    .collect())
            },
        )
        .unwrap()
    }

    fn req(prefix: &str, delimiter: Option<&str>, max: usize, marker: Option<&str>) -> ListRequest {
        ListRequest {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            max_keys: max,
            marker: marker.map(Into::into),
        }
    }

    #[test]
    fn groups_by_delimiter_and_pages() {
        let keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d", "e/1"];
        let l = run(&keys, req("", Some("/"), 1000, None));
        assert_eq!(l.entries, ["b", "d"]);
        assert_eq!(l.common_prefixes, ["a/", "c/", "e/"]);
        assert!(!l.truncated);

        // Page by two, resuming from the marker each time: prefixes are never repeated.
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let l = run(&keys, req("", Some("/"), 2, marker.as_deref()));
            seen.extend(l.entries.clone());
            seen.extend(l.common_prefixes.clone());
            if !l.truncated {
                break;
            }
            marker = l.next_marker.clone();
        }
        seen.sort();
        assert_eq!(seen, ["a/", "b", "c/", "d", "e/"]);

        let l = run(&keys, req("c/", Some("/"), 1000, None));
        assert_eq!(l.entries, ["c/y"]);
        assert_eq!(l.common_prefixes, ["c/x/"]);
        let l = run(&keys, req("c", None, 1000, None));
        assert_eq!(l.entries, ["c/x/1", "c/y"]);
        let l = run(&keys, req("", None, 3, Some("b")));
        assert_eq!(l.entries, ["c/x/1", "c/y", "d"]);
        assert!(l.truncated);
    }
}
