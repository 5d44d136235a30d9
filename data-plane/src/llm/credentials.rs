//! OAuth access tokens for `backendAuth.gcp` (Google Application Default Credentials) and
//! `backendAuth.azure` (Microsoft Entra): fetched from the cloud's token endpoint, cached and
//! refreshed before they expire, one fetch at a time for all requests of a provider.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tollgate_shared::config::model::{
    AiProvider, AzureAuth, AzureResourceType, BackendAuth, Config, GcpAuth, Provider,
};
use tollgate_shared::files;

use crate::fetch::Fetcher;

const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";
const ENTRA_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// Azure AI Foundry resources take tokens for another audience (as agentgateway).
const ENTRA_FOUNDRY_SCOPE: &str = "https://ai.azure.com/.default";
const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest a token fetch may take, and the largest answer read.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_LIMIT: usize = 64 * 1024;
/// A token is refreshed this long before it expires (at most half its lifetime before).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The longest a token is kept, whatever `expires_in` the endpoint claims (Google's and
/// Entra's last an hour or a day): a huge value must not overflow the clock.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A failed fetch is the answer of every request for this long, so that a down token
/// endpoint gets one call, not one per queued request.
const FAILURE_HOLD: Duration = Duration::from_secs(2);

/// A configured credential file that cannot be used: the config is rejected (as for TLS,
/// JWKS and htpasswd files). Names the field and the file, never its contents.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CredentialFileError {
    field: String,
    reason: String,
}

/// Reads every `backendAuth.gcp.credential.file` of `config`, so that one that cannot be used
/// rejects the config before anything changes. (Credentials from the environment are checked
/// when a request needs them: the config does not name them.)
pub fn check_files(config: &Config) -> Result<(), CredentialFileError> {
    for (field, file) in config.referenced_files() {
        if field.ends_with(".backendAuth.gcp.credential.file") {
            let auth = GcpAuth {
                credential_file: Some(file),
            };
            google(&auth).map_err(|reason| CredentialFileError { field, reason })?;
        }
    }
    Ok(())
}

/// How a token is obtained. Holds secrets: deliberately not `Debug`.
enum Grant {
    /// A service-account key: a self-signed JWT assertion exchanged at `token_uri`.
    GoogleServiceAccount {
        client_email: String,
        key_id: Option<String>,
        key: jsonwebtoken::EncodingKey,
        token_uri: String,
    },
    /// gcloud's user credentials: the refresh-token grant.
    GoogleAuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
    /// Entra's client-credentials grant, with a secret or a federated token file.
    Entra {
        token_url: String,
        client_id: String,
        proof: EntraProof,
        scope: &'static str,
    },
}

enum EntraProof {
    Secret(String),
    /// Workload identity: the projected service-account token, re-read at each fetch (it is
    /// rotated on disk).
    FederatedTokenFile(PathBuf),
}

struct Cached {
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    token: Option<Cached>,
    failure: Option<(Instant, String)>,
}

/// A provider's token: where it comes from and the one cached.
pub struct TokenSource {
    /// What the credential is, or why it cannot be used (read when the config was applied).
    grant: Result<Grant, String>,
    slot: Mutex<Slot>,
    fetcher: Fetcher,
}

impl TokenSource {
    /// The token source of a provider under `auth` (its effective `backendAuth`): `gcp` and
    /// `azure` policies, and Vertex providers without one (Google's default credentials, as
    /// agentgateway). Credential files are read now; a bad one fails every request with why.
    pub fn for_provider(p: &AiProvider, auth: Option<&BackendAuth>) -> Option<TokenSource> {
        let grant = match (auth, p.provider) {
            (Some(BackendAuth::Gcp(gcp)), _) => google(gcp),
            (None, Provider::Vertex) => google(&GcpAuth {
                credential_file: None,
            }),
            (Some(BackendAuth::Azure(azure)), _) => entra(azure, scope_for(p)),
            _ => return None,
        };
        if let Err(why) = &grant {
            tracing::warn!(provider = %p.name, "provider credentials unusable: {why}");
        }
        Some(TokenSource {
            grant,
            slot: Mutex::new(Slot::default()),
            fetcher: Fetcher::default(),
        })
    }

    /// Puts the bearer token in `headers`, replacing any other credential.
    pub async fn authorize(&self, headers: &mut HeaderMap) -> Result<(), String> {
        let value = self.bearer().await?;
        headers.remove("api-key");
        headers.remove("x-api-key");
        headers.insert(header::AUTHORIZATION, value);
        Ok(())
    }

    /// The cached token, or a new one: concurrent callers wait for the one fetch. A refresh
    /// that fails leaves the old token in use until it expires.
    async fn bearer(&self) -> Result<HeaderValue, String> {
        let grant = self.grant.as_ref().map_err(Clone::clone)?;
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if let Some(t) = &slot.token
            && now < t.refresh_at
        {
            return Ok(t.header.clone());
        }
        let unexpired = slot
            .token
            .as_ref()
            .filter(|t| now < t.expires_at)
            .map(|t| t.header.clone());
        if let Some((until, why)) = &slot.failure
            && now < *until
        {
            return unexpired.ok_or_else(|| why.clone());
        }
        match self.fetch(grant).await {
            Ok(cached) => {
                let header = cached.header.clone();
                *slot = Slot {
                    token: Some(cached),
                    failure: None,
                };
                Ok(header)
            }
            Err(why) => {
                if unexpired.is_some() {
                    tracing::warn!("token refresh failed, the current token is kept: {why}");
                }
                slot.failure = Some((Instant::now() + FAILURE_HOLD, why.clone()));
                unexpired.ok_or(why)
            }
        }
    }

    async fn fetch(&self, grant: &Grant) -> Result<Cached, String> {
        let (url, form) = match grant {
            Grant::GoogleServiceAccount {
                client_email,
                key_id,
                key,
                token_uri,
            } => {
                let assertion = google_assertion(client_email, key_id.as_deref(), key, token_uri)?;
                (
                    token_uri.as_str(),
                    form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]),
                )
            }
            Grant::GoogleAuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => (
                token_uri.as_str(),
                form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ]),
            ),
            Grant::Entra {
                token_url,
                client_id,
                proof,
                scope,
            } => {
                let mut fields = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", client_id.clone()),
                    ("scope", scope.to_string()),
                ];
                match proof {
                    EntraProof::Secret(secret) => fields.push(("client_secret", secret.clone())),
                    EntraProof::FederatedTokenFile(file) => {
                        let token =
                            files::read_to_string(file, files::MAX_SECRET).map_err(|e| {
                                format!(
                                    "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                                    file.display()
                                )
                            })?;
                        fields.push(("client_assertion_type", CLIENT_ASSERTION_JWT.to_string()));
                        fields.push(("client_assertion", token.trim().to_string()));
                    }
                }
                let pairs: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                (token_url.as_str(), form(&pairs))
            }
        };
        let content_type = HeaderValue::from_static("application/x-www-form-urlencoded");
        let fetched = self
            .fetcher
            .post(
                url,
                Some(content_type),
                Bytes::from(form),
                ANSWER_LIMIT,
                FETCH_TIMEOUT,
            )
            .await
            .map_err(|e| format!("the token endpoint failed: {e}"))?;
        token_answer(fetched.status, &fetched.body)
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The token of a token endpoint's answer, to be refreshed before it expires; errors carry
/// the endpoint's `error` and `error_description`, never a credential.
fn token_answer(status: http::StatusCode, body: &[u8]) -> Result<Cached, String> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| format!("the token endpoint answered {status} without JSON"))?;
    let token = match answer.access_token {
        Some(t) if status.is_success() => t,
        _ => {
            let mut why = format!("the token endpoint answered {status}");
            for detail in [answer.error, answer.error_description]
                .into_iter()
                .flatten()
            {
                why.push_str(": ");
                why.extend(detail.chars().take(200));
            }
            return Err(why);
        }
    };
    // Google sends a number, Entra's v1 endpoint a string.
    let lifetime = match &answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .map_or(Duration::from_secs(3600), Duration::from_secs)
    .min(MAX_LIFETIME);
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token endpoint sent a token that cannot be a header".to_string())?;
    header.set_sensitive(true);
    let expires_at = Instant::now() + lifetime;
    Ok(Cached {
        header,
        refresh_at: expires_at - REFRESH_MARGIN.min(lifetime / 2),
        expires_at,
    })
}

/// The signed JWT a service account exchanges for an access token (RFC 7523, Google's
/// claims: `scope`, `aud` the token URI, an hour of validity).
fn google_assertion(
    client_email: &str,
    key_id: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
    token_uri: &str,
) -> Result<String, String> {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "iss": client_email,
        "sub": client_email,
        "aud": token_uri,
        "scope": GOOGLE_SCOPE,
        "iat": iat,
        "exp": iat + 3600,
    });
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jwt_header.kid = key_id.map(str::to_string);
    jsonwebtoken::encode(&jwt_header, &claims, key)
        .map_err(|e| format!("cannot sign the service account's assertion: {e}"))
}

/// Google's Application Default Credentials: the configured file, else
/// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's ADC file.
fn google(auth: &GcpAuth) -> Result<Grant, String> {
    let file = match &auth.credential_file {
        Some(f) => f.clone(),
        None => match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(f) => PathBuf::from(f),
            None => {
                let dir = std::env::var_os("CLOUDSDK_CONFIG")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/gcloud"))
                    });
                match dir.map(|d| d.join("application_default_credentials.json")) {
                    Some(f) if f.exists() => f,
                    _ => {
                        return Err("no Google credentials: set backendAuth.gcp.credential.file or GOOGLE_APPLICATION_CREDENTIALS (the metadata server is not supported)".into());
                    }
                }
            }
        },
    };
    let text = files::read_to_string(&file, files::MAX_SECRET).map_err(|e| {
        format!(
            "cannot read the Google credential file {}: {e}",
            file.display()
        )
    })?;
    google_file(&text).map_err(|e| format!("the Google credential file {}: {e}", file.display()))
}

/// A credential file's grant: `service_account` or `authorized_user`.
fn google_file(text: &str) -> Result<Grant, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "type")]
        kind: String,
        client_email: Option<String>,
        private_key: Option<String>,
        private_key_id: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
        refresh_token: Option<String>,
        token_uri: Option<String>,
    }
    // serde_json's errors give the line and column, never the text.
    let f: File = serde_json::from_str(text).map_err(|e| format!("not a credential file ({e})"))?;
    let field = |v: Option<String>, name: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{name}` is missing"))
    };
    let token_uri = f.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string());
    match f.kind.as_str() {
        "service_account" => {
            let client_email = field(f.client_email, "client_email")?;
            let pem = field(f.private_key, "private_key")?;
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|_| "`private_key` is not an RSA private key in PEM".to_string())?;
            // Signed once now, so that a key that cannot sign is a load error.
            google_assertion(&client_email, None, &key, &token_uri)?;
            Ok(Grant::GoogleServiceAccount {
                client_email,
                key_id: f.private_key_id,
                key,
                token_uri,
            })
        }
        "authorized_user" => Ok(Grant::GoogleAuthorizedUser {
            client_id: field(f.client_id, "client_id")?,
            client_secret: field(f.client_secret, "client_secret")?,
            refresh_token: field(f.refresh_token, "refresh_token")?,
            token_uri,
        }),
        other => Err(format!(
            "type `{other}` is not supported (`service_account` or `authorized_user`)"
        )),
    }
}

/// The Entra scope for a provider: AI Foundry's, or Azure OpenAI's (Cognitive Services).
fn scope_for(p: &AiProvider) -> &'static str {
    match &p.azure {
        Some(a) if a.resource_type == AzureResourceType::Foundry => ENTRA_FOUNDRY_SCOPE,
        _ => ENTRA_SCOPE,
    }
}

/// Entra's client-credentials grant at `{authority}/{tenant}/oauth2/v2.0/token`, the
/// authority from `AZURE_AUTHORITY_HOST` as the Azure SDKs read it.
fn entra(auth: &AzureAuth, scope: &'static str) -> Result<Grant, String> {
    let authority = std::env::var("AZURE_AUTHORITY_HOST")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| ENTRA_AUTHORITY.to_string());
    let token_url = |tenant: &str| {
        format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        )
    };
    match auth {
        AzureAuth::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            if client_secret.expose().is_empty() {
                let fix = client_secret.variables().join(" or ");
                return Err(format!("the Azure client secret is empty (set {fix})"));
            }
            Ok(Grant::Entra {
                token_url: token_url(tenant_id),
                client_id: client_id.clone(),
                proof: EntraProof::Secret(client_secret.expose().to_string()),
                scope,
            })
        }
        AzureAuth::WorkloadIdentity => {
            let var = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("workload identity needs {name} in the environment"))
            };
            Ok(Grant::Entra {
                token_url: token_url(&var("AZURE_TENANT_ID")?),
                client_id: var("AZURE_CLIENT_ID")?,
                proof: EntraProof::FederatedTokenFile(var("AZURE_FEDERATED_TOKEN_FILE")?.into()),
                scope,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_give_the_token_and_its_refresh_time() {
        let ok = token_answer(
            http::StatusCode::OK,
            br#"{"access_token":"ya29.x","expires_in":3600,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(ok.header, "Bearer ya29.x");
        assert!(ok.header.is_sensitive());
        let left = ok.refresh_at - Instant::now();
        assert!(left > Duration::from_secs(3290) && left <= Duration::from_secs(3300));
        // A short-lived token is refreshed halfway.
        let short = token_answer(
            http::StatusCode::OK,
            br#"{"access_token":"t","expires_in":"4"}"#,
        )
        .unwrap();
        assert!(short.refresh_at - Instant::now() <= Duration::from_secs(2));
        // A hostile lifetime is capped (it once overflowed the clock and panicked).
        let huge = token_answer(
            http::StatusCode::OK,
            format!(r#"{{"access_token":"t","expires_in":{}}}"#, u64::MAX).as_bytes(),
        )
        .unwrap();
        assert!(huge.expires_at - Instant::now() <= MAX_LIFETIME);
        let refused = token_answer(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        )
        .err()
        .unwrap();
        assert_eq!(
            refused,
            "the token endpoint answered 400 Bad Request: invalid_grant: Invalid JWT Signature."
        );
    }

    #[test]
    fn bad_credential_files_say_what_is_wrong() {
        let err = |text: &str| google_file(text).err().unwrap();
        assert!(
            err("{\n  \"type\": ").contains("line 2"),
            "{}",
            err("{\n \"type\": ")
        );
        assert_eq!(
            err(r#"{"type":"service_account","client_email":"a@b"}"#),
            "`private_key` is missing"
        );
        assert_eq!(
            err(
                r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#
            ),
            "`private_key` is not an RSA private key in PEM"
        );
        assert!(err(r#"{"type":"external_account"}"#).contains("not supported"));
        assert!(matches!(
            google_file(r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#),
            Ok(Grant::GoogleAuthorizedUser { token_uri, .. }) if token_uri == GOOGLE_TOKEN_URI
        ));
    }
}
