//! A runtime's `authorizerConfiguration.customJWTAuthorizer`, typed, and the claim checks it asks
//! for (inbound-jwt-authorizer in the AgentCore developer guide): `aud` against `allowedAudience`,
//! `client_id` against `allowedClients`, `scope` against `allowedScopes`, and each `customClaims` rule.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::JwtError;

/// `CustomJWTAuthorizerConfiguration`, as the caller sent it with CreateAgentRuntime (the members
/// the emulator acts on; network-only members such as `privateEndpoint` are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuthorizer {
    pub discovery_url: String,
    #[serde(default)]
    pub allowed_audience: Vec<String>,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub custom_claims: Vec<CustomClaim>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomClaim {
    pub inbound_token_claim_name: String,
    pub inbound_token_claim_value_type: ClaimValueType,
    pub authorizing_claim_match_value: AuthorizingMatch,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum ClaimValueType {
    #[serde(rename = "STRING")]
    String,
    #[serde(rename = "STRING_ARRAY")]
    StringArray,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizingMatch {
    pub claim_match_value: MatchValue,
    pub claim_match_operator: MatchOperator,
}

/// A union in the model: exactly one member is set.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MatchValue {
    pub match_value_string: Option<String>,
    pub match_value_string_list: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum MatchOperator {
    #[serde(rename = "EQUALS")]
    Equals,
    #[serde(rename = "CONTAINS")]
    Contains,
    #[serde(rename = "CONTAINS_ANY")]
    ContainsAny,
}

impl JwtAuthorizer {
    /// The authorizer of a runtime version's configuration (the JSON of CreateAgentRuntime), if any.
    pub fn of_config(config: &Map<String, Value>) -> Option<Result<JwtAuthorizer, String>> {
        let raw = config.get("authorizerConfiguration")?.get("customJWTAuthorizer")?;
        Some(serde_json::from_value(raw.clone()).map_err(|e| format!("customJWTAuthorizer is not usable: {e}")))
    }

    /// Combinations the model cannot express but the service refuses: EQUALS compares a STRING
    /// claim with `matchValueString`; CONTAINS looks for `matchValueString` in a STRING_ARRAY claim;
    /// CONTAINS_ANY looks for any of `matchValueStringList` in a STRING_ARRAY claim.
    pub fn check_configuration(&self) -> Result<(), String> {
        for rule in &self.custom_claims {
            let name = &rule.inbound_token_claim_name;
            let m = &rule.authorizing_claim_match_value;
            let (ty, op) = (rule.inbound_token_claim_value_type, m.claim_match_operator);
            let wants_list = op == MatchOperator::ContainsAny;
            match (ty, op) {
                (ClaimValueType::String, MatchOperator::Equals)
                | (ClaimValueType::StringArray, MatchOperator::Contains | MatchOperator::ContainsAny) => {}
                _ => {
                    return Err(format!(
                        "customClaims '{name}': claimMatchOperator {op:?} cannot be used with inboundTokenClaimValueType {ty:?} \
                         (EQUALS takes a STRING claim; CONTAINS and CONTAINS_ANY take a STRING_ARRAY claim)."
                    ))
                }
            }
            let value = &m.claim_match_value;
            let ok = if wants_list {
                value.match_value_string_list.as_ref().is_some_and(|l| !l.is_empty())
                    && value.match_value_string.is_none()
            } else {
                value.match_value_string.is_some() && value.match_value_string_list.is_none()
            };
            if !ok {
                let member = if wants_list { "matchValueStringList" } else { "matchValueString" };
                return Err(format!(
                    "customClaims '{name}': claimMatchOperator {op:?} needs claimMatchValue.{member}."
                ));
            }
        }
        Ok(())
    }

    /// The authorization checks on a token whose signature, issuer and lifetime are already verified.
    pub fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), JwtError> {
        if !self.allowed_audience.is_empty() {
            let aud = strings(claims.get("aud"));
            if !aud.iter().any(|a| self.allowed_audience.contains(a)) {
                return Err(JwtError::Audience { found: aud, allowed: self.allowed_audience.clone() });
            }
        }
        if !self.allowed_clients.is_empty() {
            let client = claims.get("client_id").and_then(Value::as_str).map(String::from);
            if !client.as_ref().is_some_and(|c| self.allowed_clients.contains(c)) {
                return Err(JwtError::Client { found: client, allowed: self.allowed_clients.clone() });
            }
        }
        if !self.allowed_scopes.is_empty() {
            let scopes = scopes_of(claims);
            if !scopes.iter().any(|s| self.allowed_scopes.contains(s)) {
                return Err(JwtError::Scope { found: scopes, allowed: self.allowed_scopes.clone() });
            }
        }
        for rule in &self.custom_claims {
            check_custom_claim(rule, claims)?;
        }
        Ok(())
    }
}

fn check_custom_claim(rule: &CustomClaim, claims: &Map<String, Value>) -> Result<(), JwtError> {
    let name = &rule.inbound_token_claim_name;
    let value = claims.get(name);
    let m = &rule.authorizing_claim_match_value;
    let want_one = m.claim_match_value.match_value_string.clone().unwrap_or_default();
    let want_any = m.claim_match_value.match_value_string_list.clone().unwrap_or_default();
    let fail = |why: String| JwtError::CustomClaim { claim: name.clone(), reason: why };
    match (rule.inbound_token_claim_value_type, m.claim_match_operator) {
        (ClaimValueType::String, MatchOperator::Equals) => match value.and_then(Value::as_str) {
            Some(v) if v == want_one => Ok(()),
            Some(v) => Err(fail(format!("is '{v}', not '{want_one}'"))),
            None => Err(fail("is missing or not a string".into())),
        },
        (ClaimValueType::StringArray, op) => {
            let Some(list) = value.and_then(Value::as_array) else {
                return Err(fail("is missing or not an array of strings".into()));
            };
            let have: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            let ok = match op {
                MatchOperator::Contains => have.contains(&want_one.as_str()),
                _ => want_any.iter().any(|w| have.contains(&w.as_str())),
            };
            if ok {
                Ok(())
            } else if op == MatchOperator::Contains {
                Err(fail(format!("{have:?} does not contain '{want_one}'")))
            } else {
                Err(fail(format!("{have:?} contains none of {want_any:?}")))
            }
        }
        (ty, op) => Err(fail(format!("the rule's operator {op:?} does not apply to {ty:?} claims"))),
    }
}

/// A claim that is a string or an array of strings (as `aud` may be), as a list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![],
    }
}

/// `scope` is a space-separated string (RFC 8693 §4.2); some issuers (Okta, Entra) send `scp` as
/// an array instead.
pub fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        other => strings(other),
    };
    out.extend(strings(claims.get("scp")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authorizer(extra: Value) -> JwtAuthorizer {
        let mut base = json!({"discoveryUrl": "http://127.0.0.1/.well-known/openid-configuration"});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn audience_client_and_scope_each_need_one_match() {
        let a = authorizer(
            json!({"allowedAudience": ["api"], "allowedClients": ["c1"], "allowedScopes": ["read", "write"]}),
        );
        assert!(a
            .check_claims(&claims(json!({"aud": ["x", "api"], "client_id": "c1", "scope": "write other"})))
            .is_ok());
        assert!(matches!(
            a.check_claims(&claims(json!({"aud": "x", "client_id": "c1", "scope": "read"}))),
            Err(JwtError::Audience { .. })
        ));
        assert!(matches!(
            a.check_claims(&claims(json!({"aud": "api", "client_id": "c2", "scope": "read"}))),
            Err(JwtError::Client { .. })
        ));
        assert!(matches!(
            a.check_claims(&claims(json!({"aud": "api", "client_id": "c1", "scope": "admin"}))),
            Err(JwtError::Scope { .. })
        ));
        assert!(a.check_claims(&claims(json!({"aud": "api", "client_id": "c1", "scp": ["read"]}))).is_ok());
        // Unset lists check nothing.
        assert!(authorizer(json!({})).check_claims(&claims(json!({}))).is_ok());
    }

    #[test]
    fn custom_claim_operators() {
        let rule = |ty: &str, op: &str, value: Value| {
            authorizer(json!({"customClaims": [{
                "inboundTokenClaimName": "groups", "inboundTokenClaimValueType": ty,
                "authorizingClaimMatchValue": {"claimMatchOperator": op, "claimMatchValue": value}}]}))
        };
        let equals = rule("STRING", "EQUALS", json!({"matchValueString": "admin"}));
        assert!(equals.check_configuration().is_ok());
        assert!(equals.check_claims(&claims(json!({"groups": "admin"}))).is_ok());
        assert!(equals.check_claims(&claims(json!({"groups": "user"}))).is_err());
        assert!(equals.check_claims(&claims(json!({}))).is_err());
        let contains = rule("STRING_ARRAY", "CONTAINS", json!({"matchValueString": "admin"}));
        assert!(contains.check_claims(&claims(json!({"groups": ["user", "admin"]}))).is_ok());
        assert!(contains.check_claims(&claims(json!({"groups": ["user"]}))).is_err());
        let any = rule("STRING_ARRAY", "CONTAINS_ANY", json!({"matchValueStringList": ["ops", "admin"]}));
        assert!(any.check_claims(&claims(json!({"groups": ["admin"]}))).is_ok());
        assert!(any.check_claims(&claims(json!({"groups": ["user"]}))).is_err());
        assert!(any.check_claims(&claims(json!({"groups": "admin"}))).is_err(), "a string is not an array");
        // Combinations the service refuses at configuration time.
        assert!(rule("STRING", "CONTAINS", json!({"matchValueString": "a"})).check_configuration().is_err());
        assert!(rule("STRING_ARRAY", "EQUALS", json!({"matchValueString": "a"})).check_configuration().is_err());
        assert!(rule("STRING_ARRAY", "CONTAINS_ANY", json!({"matchValueString": "a"})).check_configuration().is_err());
    }
}
