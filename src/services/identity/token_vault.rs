//! GetTokenVault and SetTokenVaultCMK. Every account has the `default` vault. The key setting is
//! recorded and reported; the secrets themselves are always sealed with this data directory's
//! vault key (`vault.rs`), since there is no KMS here to hold a customer managed key.

use super::providers::DEFAULT_TOKEN_VAULT;
use super::tables::VaultRow;
use super::{now_ms, tables, IdentityService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};

pub const SERVICE_MANAGED_KEY: &str = "ServiceManagedKey";
pub const CUSTOMER_MANAGED_KEY: &str = "CustomerManagedKey";

fn check_vault_id(caller: &Caller, id: &str) -> Result<()> {
    if id != DEFAULT_TOKEN_VAULT {
        return Err(Error::not_found(format!(
            "No token vault '{id}' exists in account {} in {}; every account has the '{DEFAULT_TOKEN_VAULT}' vault.",
            caller.account, caller.region
        )));
    }
    Ok(())
}

impl IdentityService {
    pub async fn token_vault(&self, caller: Caller, vault_id: Option<String>) -> Result<VaultRow> {
        let id = vault_id.unwrap_or_else(|| DEFAULT_TOKEN_VAULT.into());
        check_vault_id(&caller, &id)?;
        self.store
            .write(move |tx| {
                let t = tables(tx);
                if let Some(row) = t.vault(&caller.account, &caller.region, &id)? {
                    return Ok(row);
                }
                // First use: the vault comes into being with the service-managed key.
                let row = VaultRow {
                    vault_id: id,
                    key_type: SERVICE_MANAGED_KEY.into(),
                    kms_key_arn: None,
                    updated_at: now_ms(),
                };
                t.put_vault(&caller.account, &caller.region, &row)?;
                Ok(row)
            })
            .await
    }

    pub async fn set_token_vault_key(
        &self,
        caller: Caller,
        vault_id: Option<String>,
        key_type: String,
        kms_key_arn: Option<String>,
    ) -> Result<VaultRow> {
        let id = vault_id.unwrap_or_else(|| DEFAULT_TOKEN_VAULT.into());
        check_vault_id(&caller, &id)?;
        let kms_key_arn = match (key_type.as_str(), kms_key_arn) {
            (CUSTOMER_MANAGED_KEY, Some(arn)) => Some(arn),
            (CUSTOMER_MANAGED_KEY, None) => {
                return Err(Error::invalid_field("kmsConfiguration.kmsKeyArn", "A CustomerManagedKey needs kmsKeyArn."))
            }
            (_, Some(_)) => {
                return Err(Error::invalid_field(
                    "kmsConfiguration.kmsKeyArn",
                    "kmsKeyArn applies only to keyType CustomerManagedKey.",
                ))
            }
            (_, None) => None,
        };
        self.store
            .write(move |tx| {
                let row = VaultRow { vault_id: id, key_type, kms_key_arn, updated_at: now_ms() };
                tables(tx).put_vault(&caller.account, &caller.region, &row)?;
                Ok(row)
            })
            .await
    }
}
