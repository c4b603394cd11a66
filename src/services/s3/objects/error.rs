//! S3's errors: a code, an HTTP status, a message and the extra elements S3 puts in its XML error
//! document (`BucketName`, `Key`, …). The domain raises these; `api::s3` renders them.

use crate::kernel::error::{Error, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
    /// Extra child elements of `<Error>`, in order.
    pub details: Vec<(&'static str, String)>,
    /// Headers the error response carries (`x-amz-delete-marker`, `x-amz-version-id`, …).
    pub headers: Vec<(&'static str, String)>,
}

pub type S3Result<T> = std::result::Result<T, S3Error>;

impl S3Error {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        S3Error { code, status, message: message.into(), details: Vec::new(), headers: Vec::new() }
    }

    /// Adds an element to the XML error document.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn detail(&self, name: &str) -> Option<&str> {
        self.details.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        S3Error::new("NoSuchBucket", 404, "The specified bucket does not exist").with("BucketName", bucket)
    }

    pub fn no_such_key(key: &str) -> Self {
        S3Error::new("NoSuchKey", 404, "The specified key does not exist.").with("Key", key)
    }

    pub fn no_such_version(key: &str, version_id: &str) -> Self {
        S3Error::new("NoSuchVersion", 404, "The specified version does not exist.")
            .with("Key", key)
            .with("VersionId", version_id)
    }

    pub fn no_such_upload(upload_id: &str) -> Self {
        S3Error::new(
            "NoSuchUpload",
            404,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .with("UploadId", upload_id)
    }

    pub fn access_denied() -> Self {
        S3Error::new("AccessDenied", 403, "Access Denied")
    }

    pub fn bucket_already_owned_by_you(bucket: &str) -> Self {
        S3Error::new(
            "BucketAlreadyOwnedByYou",
            409,
            "Your previous request to create the named bucket succeeded and you already own it.",
        )
        .with("BucketName", bucket)
    }

    pub fn bucket_already_exists(bucket: &str) -> Self {
        S3Error::new(
            "BucketAlreadyExists",
            409,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. \
             Please select a different name and try again.",
        )
        .with("BucketName", bucket)
    }

    pub fn bucket_not_empty(bucket: &str) -> Self {
        S3Error::new("BucketNotEmpty", 409, "The bucket you tried to delete is not empty").with("BucketName", bucket)
    }

    pub fn invalid_bucket_name(bucket: &str) -> Self {
        S3Error::new("InvalidBucketName", 400, "The specified bucket is not valid.").with("BucketName", bucket)
    }

    pub fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> Self {
        S3Error::new("InvalidArgument", 400, message).with("ArgumentName", name).with("ArgumentValue", value)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        S3Error::new("InvalidRequest", 400, message)
    }

    pub fn malformed_xml() -> Self {
        S3Error::new(
            "MalformedXML",
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    pub fn method_not_allowed(method: &str, resource_type: &str) -> Self {
        S3Error::new("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
            .with("Method", method)
            .with("ResourceType", resource_type)
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        S3Error::new("NotImplemented", 501, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        S3Error::new("InternalError", 500, message)
    }

    pub fn io(context: &str, e: std::io::Error) -> Self {
        S3Error::internal(format!("{context}: {e}"))
    }

    /// The same failure as the crate's error type, for callers outside the S3 API (code deployment):
    /// a missing bucket, key or version is `ResourceNotFoundException` naming what is missing.
    pub fn into_error(self) -> Error {
        let detail = |name| self.detail(name).unwrap_or_default().to_string();
        match self.code {
            "NoSuchBucket" => Error::not_found(format!("S3 bucket '{}' does not exist.", detail("BucketName"))),
            "NoSuchKey" => Error::not_found(format!("S3 object '{}' does not exist.", detail("Key"))),
            "NoSuchVersion" => Error::not_found(format!(
                "Version '{}' of S3 object '{}' does not exist.",
                detail("VersionId"),
                detail("Key")
            )),
            "MethodNotAllowed" => {
                Error::not_found(format!("The requested version of the S3 object is a delete marker: {}", self.message))
            }
            "AccessDenied" => Error::new(ErrorKind::AccessDenied, format!("S3: {}", self.message)),
            _ if self.status < 500 => Error::validation(format!("S3 {}: {}", self.code, self.message)),
            _ => Error::internal(format!("S3 {}: {}", self.code, self.message)),
        }
    }
}

impl From<Error> for S3Error {
    fn from(e: Error) -> Self {
        S3Error::internal(e.message)
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}
