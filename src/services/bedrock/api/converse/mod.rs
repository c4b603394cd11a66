//! The Converse API's wire: requests in (`input`), answers and stream events out (`output`).

pub mod input;
pub mod output;
