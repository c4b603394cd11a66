//! OAuth2 credential providers and the tokens they give: the providers' configuration
//! (`providers.rs`), the emulator as an OAuth2 client (`client.rs`), GetResourceOauth2Token
//! (`tokens.rs`) and the USER_FEDERATION authorization sessions (`federation.rs`).

pub mod client;
pub mod federation;
pub mod providers;
pub mod tokens;

pub use federation::{BrowserOutcome, UserIdentifier, AUTHORIZE_PATH};
pub use providers::CALLBACK_PATH;
pub use tokens::{Flow, TokenOutcome, TokenRequest};
