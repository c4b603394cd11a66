//! Sandboxes that run agent sessions. Until the Docker backend lands, versions are accepted as they
//! are (no image is resolved) and nothing runs; see issue "Real agent sessions".

use crate::control::{BoxFuture, Provisioner};
use crate::store::{RuntimeRow, VersionRow};

/// Accepts every version and has no sessions to stop.
pub struct AcceptAll;

impl Provisioner for AcceptAll {
    fn prepare<'a>(&'a self, _runtime: &'a RuntimeRow, _version: &'a VersionRow) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn retire<'a>(&'a self, _runtime: &'a RuntimeRow, _version: Option<u32>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
