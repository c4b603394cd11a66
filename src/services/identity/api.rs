//! The Identity operations on the wire: which operations this service owns, their typed inputs
//! (deserialized from the input the kernel has bound and validated against the model), and their
//! outputs in the model's shapes. Secrets appear only in the outputs whose shape carries them
//! (GetResourceApiKey, GetResourceOauth2Token, the workload access tokens), never in Get/List.

use std::collections::BTreeMap;

use http::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::oauth2::providers::stored_config;
use super::oauth2::{Flow, TokenOutcome, TokenRequest, UserIdentifier};
use super::tables::{ProviderRow, VaultRow, WorkloadRow};
use super::{IdentityService, RuntimeAuthorizers};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::response::{self, timestamp, Body};

/// bedrock-agentcore-control operations served here.
pub const CONTROL_OPERATIONS: &[&str] = &[
    "CreateWorkloadIdentity",
    "GetWorkloadIdentity",
    "UpdateWorkloadIdentity",
    "DeleteWorkloadIdentity",
    "ListWorkloadIdentities",
    "CreateApiKeyCredentialProvider",
    "GetApiKeyCredentialProvider",
    "UpdateApiKeyCredentialProvider",
    "DeleteApiKeyCredentialProvider",
    "ListApiKeyCredentialProviders",
    "CreateOauth2CredentialProvider",
    "GetOauth2CredentialProvider",
    "UpdateOauth2CredentialProvider",
    "DeleteOauth2CredentialProvider",
    "ListOauth2CredentialProviders",
    "GetTokenVault",
    "SetTokenVaultCMK",
];

/// bedrock-agentcore (data plane) operations served here.
pub const DATA_OPERATIONS: &[&str] = &[
    "GetWorkloadAccessToken",
    "GetWorkloadAccessTokenForJWT",
    "GetWorkloadAccessTokenForUserId",
    "GetResourceApiKey",
    "GetResourceOauth2Token",
    "CompleteResourceTokenAuth",
];

pub fn owns(operation: &str) -> bool {
    CONTROL_OPERATIONS.contains(&operation) || DATA_OPERATIONS.contains(&operation)
}

/// One Identity request, its input already bound and validated against the model.
pub struct IdentityCall<'a> {
    pub request_id: &'a str,
    pub caller: Caller,
    pub operation: &'a str,
    /// The operation's modelled success status (201 for creates, 204 for deletes).
    pub status: u16,
    pub input: Map<String, Value>,
}

fn typed<T: DeserializeOwned>(input: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(input))
        .map_err(|e| Error::validation(format!("The request could not be read: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateWorkloadIdentity {
    name: String,
    #[serde(default, rename = "allowedResourceOauth2ReturnUrls")]
    return_urls: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateWorkloadIdentity {
    name: String,
    #[serde(rename = "allowedResourceOauth2ReturnUrls")]
    return_urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyProviderInput {
    name: String,
    api_key: Option<String>,
    api_key_secret_source: Option<String>,
    api_key_secret_config: Option<Value>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Oauth2ProviderInput {
    name: String,
    credential_provider_vendor: String,
    #[serde(rename = "oauth2ProviderConfigInput")]
    config: Map<String, Value>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenVaultInput {
    token_vault_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetTokenVaultCmk {
    token_vault_id: Option<String>,
    kms_configuration: KmsConfiguration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KmsConfiguration {
    key_type: String,
    kms_key_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadName {
    workload_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForJwt {
    workload_name: String,
    user_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForUserId {
    workload_name: String,
    user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceApiKey {
    workload_identity_token: String,
    resource_credential_provider_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceOauth2Token {
    workload_identity_token: String,
    resource_credential_provider_name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(rename = "oauth2Flow")]
    flow: String,
    session_uri: Option<String>,
    #[serde(rename = "resourceOauth2ReturnUrl")]
    return_url: Option<String>,
    #[serde(default)]
    force_authentication: bool,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
    custom_state: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteResourceTokenAuth {
    user_identifier: UserIdentifierInput,
    session_uri: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentifierInput {
    user_token: Option<String>,
    user_id: Option<String>,
}

fn workload_view(w: &WorkloadRow, detail: bool) -> Value {
    let mut v = json!({
        "name": w.name,
        "workloadIdentityArn": w.arn,
        "allowedResourceOauth2ReturnUrls": w.return_urls,
    });
    if detail {
        v["createdTime"] = timestamp(w.created_at);
        v["lastUpdatedTime"] = timestamp(w.updated_at);
    }
    v
}

fn api_key_view(p: &ProviderRow) -> Value {
    json!({
        "apiKeySecretArn": {"secretArn": p.secret_arn},
        "apiKeySecretSource": "MANAGED",
        "name": p.name,
        "credentialProviderArn": p.arn,
        "createdTime": timestamp(p.created_at),
        "lastUpdatedTime": timestamp(p.updated_at),
    })
}

fn oauth2_view(identity: &IdentityService, p: &ProviderRow) -> Result<Value> {
    let config = stored_config(p)?;
    Ok(json!({
        "clientSecretArn": {"secretArn": p.secret_arn},
        "clientSecretSource": "MANAGED",
        "name": p.name,
        "credentialProviderVendor": p.vendor,
        "credentialProviderArn": p.arn,
        "callbackUrl": identity.callback_url(p),
        "oauth2ProviderConfigOutput": config.output(),
        "createdTime": timestamp(p.created_at),
        "lastUpdatedTime": timestamp(p.updated_at),
        "status": "READY",
    }))
}

fn vault_view(v: &VaultRow) -> Value {
    let mut kms = json!({"keyType": v.key_type});
    if let Some(arn) = &v.kms_key_arn {
        kms["kmsKeyArn"] = json!(arn);
    }
    json!({"tokenVaultId": v.vault_id, "kmsConfiguration": kms, "lastModifiedDate": timestamp(v.updated_at)})
}

fn page_of(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut body = json!({ key: items });
    if let Some(next) = next {
        body["nextToken"] = json!(next);
    }
    body
}

pub async fn handle(
    identity: &IdentityService,
    runtimes: &dyn RuntimeAuthorizers,
    call: IdentityCall<'_>,
) -> Result<Response<Body>> {
    let caller = call.caller.clone();
    let input = call.input;
    let body = match call.operation {
        "CreateWorkloadIdentity" => {
            let i: CreateWorkloadIdentity = typed(input)?;
            workload_view(&identity.create_workload(caller, i.name, i.return_urls, i.tags).await?, false)
        }
        "GetWorkloadIdentity" => {
            let i: Named = typed(input)?;
            workload_view(&identity.get_workload(caller, i.name).await?, true)
        }
        "UpdateWorkloadIdentity" => {
            let i: UpdateWorkloadIdentity = typed(input)?;
            workload_view(&identity.update_workload(caller, i.name, i.return_urls).await?, true)
        }
        "DeleteWorkloadIdentity" => {
            let i: Named = typed(input)?;
            identity.delete_workload(caller, i.name).await?;
            return Ok(response::no_content(call.status, call.request_id));
        }
        "ListWorkloadIdentities" => {
            let i: Listing = typed(input)?;
            let (rows, next) = identity.list_workloads(caller, i.max_results, i.next_token).await?;
            let items = rows.iter().map(|w| json!({"name": w.name, "workloadIdentityArn": w.arn})).collect();
            page_of("workloadIdentities", items, next)
        }
        "CreateApiKeyCredentialProvider" => {
            let i: ApiKeyProviderInput = typed(input)?;
            super::providers::refuse_external_secret(
                i.api_key_secret_source.as_deref(),
                i.api_key_secret_config.is_some(),
                "apiKey",
            )?;
            api_key_view(&identity.create_api_key_provider(caller, i.name, i.api_key, i.tags).await?)
        }
        "GetApiKeyCredentialProvider" => {
            let i: Named = typed(input)?;
            api_key_view(&identity.get_api_key_provider(caller, i.name).await?)
        }
        "UpdateApiKeyCredentialProvider" => {
            let i: ApiKeyProviderInput = typed(input)?;
            super::providers::refuse_external_secret(
                i.api_key_secret_source.as_deref(),
                i.api_key_secret_config.is_some(),
                "apiKey",
            )?;
            api_key_view(&identity.update_api_key_provider(caller, i.name, i.api_key).await?)
        }
        "DeleteApiKeyCredentialProvider" => {
            let i: Named = typed(input)?;
            identity.delete_api_key_provider(caller, i.name).await?;
            return Ok(response::no_content(call.status, call.request_id));
        }
        "ListApiKeyCredentialProviders" => {
            let i: Listing = typed(input)?;
            let (rows, next) = identity.list_api_key_providers(caller, i.max_results, i.next_token).await?;
            let items = rows
                .iter()
                .map(|p| {
                    json!({"name": p.name, "credentialProviderArn": p.arn,
                           "createdTime": timestamp(p.created_at), "lastUpdatedTime": timestamp(p.updated_at)})
                })
                .collect();
            page_of("credentialProviders", items, next)
        }
        "CreateOauth2CredentialProvider" => {
            let i: Oauth2ProviderInput = typed(input)?;
            let row =
                identity.create_oauth2_provider(caller, i.name, i.credential_provider_vendor, i.config, i.tags).await?;
            oauth2_view(identity, &row)?
        }
        "GetOauth2CredentialProvider" => {
            let i: Named = typed(input)?;
            oauth2_view(identity, &identity.get_oauth2_provider(caller, i.name).await?)?
        }
        "UpdateOauth2CredentialProvider" => {
            let i: Oauth2ProviderInput = typed(input)?;
            let row = identity.update_oauth2_provider(caller, i.name, i.credential_provider_vendor, i.config).await?;
            oauth2_view(identity, &row)?
        }
        "DeleteOauth2CredentialProvider" => {
            let i: Named = typed(input)?;
            identity.delete_oauth2_provider(caller, i.name).await?;
            return Ok(response::no_content(call.status, call.request_id));
        }
        "ListOauth2CredentialProviders" => {
            let i: Listing = typed(input)?;
            let (rows, next) = identity.list_oauth2_providers(caller, i.max_results, i.next_token).await?;
            let items = rows
                .iter()
                .map(|p| {
                    json!({"name": p.name, "credentialProviderVendor": p.vendor, "credentialProviderArn": p.arn,
                           "createdTime": timestamp(p.created_at), "lastUpdatedTime": timestamp(p.updated_at)})
                })
                .collect();
            page_of("credentialProviders", items, next)
        }
        "GetTokenVault" => {
            let i: TokenVaultInput = typed(input)?;
            vault_view(&identity.token_vault(caller, i.token_vault_id).await?)
        }
        "SetTokenVaultCMK" => {
            let i: SetTokenVaultCmk = typed(input)?;
            let k = i.kms_configuration;
            vault_view(&identity.set_token_vault_key(caller, i.token_vault_id, k.key_type, k.kms_key_arn).await?)
        }
        "GetWorkloadAccessToken" => {
            let i: WorkloadName = typed(input)?;
            json!({"workloadAccessToken": identity.workload_access_token(caller, i.workload_name).await?})
        }
        "GetWorkloadAccessTokenForUserId" => {
            let i: ForUserId = typed(input)?;
            json!({"workloadAccessToken": identity.workload_access_token_for_user_id(caller, i.workload_name, i.user_id).await?})
        }
        "GetWorkloadAccessTokenForJWT" => {
            let i: ForJwt = typed(input)?;
            let workload = identity.get_workload(caller.clone(), i.workload_name.clone()).await?;
            let authorizer = match &workload.runtime_id {
                Some(runtime) => runtimes.authorizer(&caller.account, &caller.region, runtime).await?,
                None => None,
            };
            let token =
                identity.workload_access_token_for_jwt(caller, i.workload_name, i.user_token, authorizer).await?;
            json!({"workloadAccessToken": token})
        }
        "GetResourceApiKey" => {
            let i: ResourceApiKey = typed(input)?;
            json!({"apiKey": identity.resource_api_key(caller, &i.workload_identity_token, i.resource_credential_provider_name).await?})
        }
        "GetResourceOauth2Token" => {
            let i: ResourceOauth2Token = typed(input)?;
            let flow = match i.flow.as_str() {
                "M2M" => Flow::M2m,
                "USER_FEDERATION" => Flow::UserFederation,
                other => {
                    return Err(Error::invalid_field(
                        "oauth2Flow",
                        format!("oauth2Flow {other} is not emulated by agentcore-local; use M2M or USER_FEDERATION."),
                    ))
                }
            };
            let req = TokenRequest {
                workload_token: i.workload_identity_token,
                provider: i.resource_credential_provider_name,
                scopes: i.scopes,
                session_uri: i.session_uri,
                return_url: i.return_url,
                force_authentication: i.force_authentication,
                custom_parameters: i.custom_parameters,
                custom_state: i.custom_state,
                resources: i.resources,
                audiences: i.audiences,
            };
            match identity.resource_oauth2_token(caller, flow, req).await? {
                TokenOutcome::Token(t) => json!({"accessToken": t}),
                TokenOutcome::Authorize { authorization_url, session_uri } => {
                    json!({"authorizationUrl": authorization_url, "sessionUri": session_uri, "sessionStatus": "IN_PROGRESS"})
                }
                TokenOutcome::Failed { session_uri } => json!({"sessionUri": session_uri, "sessionStatus": "FAILED"}),
            }
        }
        "CompleteResourceTokenAuth" => {
            let i: CompleteResourceTokenAuth = typed(input)?;
            let user = match (i.user_identifier.user_id, i.user_identifier.user_token) {
                (Some(id), None) => UserIdentifier::UserId(id),
                (None, Some(token)) => UserIdentifier::UserToken(token),
                _ => {
                    return Err(Error::invalid_field(
                        "userIdentifier",
                        "userIdentifier must set exactly one of userId and userToken.",
                    ))
                }
            };
            identity.complete_session(caller, i.session_uri, user).await?;
            json!({})
        }
        other => return Err(Error::internal(format!("operation {other} is routed to Identity but has no handler"))),
    };
    Ok(response::json(call.status, &body, call.request_id))
}
