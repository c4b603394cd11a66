//! The memory service's tables: their schema and migrations, typed rows, the queries (the only
//! SQL of the service) and each memory's full-text index.

pub mod index;
mod queries;
mod rows;
pub mod schema;
mod scope;

pub use queries::{Db, RecordWrite, TokenKey};
pub use rows::*;
pub use scope::{NamespaceScope, SearchScope};
