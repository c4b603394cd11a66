//! The built-in issuer's ES256 signing key (P-256), and the JWK that publishes its public half.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct SigningKey {
    /// PKCS#8 DER of the private key: what the token vault keeps (sealed).
    pub pkcs8: Vec<u8>,
    /// Derived from the public key, so it is stable for the key's life.
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub public_jwk: Value,
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, String> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "could not generate a P-256 key".to_string())?;
        SigningKey::from_pkcs8(doc.as_ref())
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|e| format!("the stored issuer key is not a P-256 PKCS#8 key: {e}"))?;
        // An uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err("unexpected P-256 public key encoding".into());
        }
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
        let kid = hex::encode(&Sha256::digest(point)[..8]);
        let public_jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Ok(SigningKey { pkcs8: pkcs8.to_vec(), kid, encoding: EncodingKey::from_ec_der(pkcs8), decoding, public_jwk })
    }
}
