//! The microVM metadata service (MMDS) of AgentCore sessions: the IMDS protocol every SDK's default
//! credential chain speaks, handing each sandbox its runtime's execution-role credentials (issued by
//! `services::sts::credentials`). Only its wire lives here; sandboxes are told apart by
//! `sessions::directory`.

pub mod api;
