//! Fake cloud token endpoints speaking their published wire formats: Google's OAuth token
//! endpoint (the JWT-bearer grant: the assertion's RS256 signature checked with the service
//! account's public key, its claims and lifetime) and Microsoft Entra's v2.0 token endpoint
//! (client credentials with a secret or a federated client assertion); gcloud's user
//! credentials (the refresh-token grant) too. Both issue tokens with
//! a chosen lifetime into a [`TokenBook`] that the fake providers consult.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The Google scope every Vertex call needs.
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Tokens issued and when they expire; the fake providers accept only live ones.
#[derive(Clone, Default)]
pub struct TokenBook(Arc<Mutex<Vec<(String, tokio::time::Instant)>>>);

impl TokenBook {
    /// Whether `token` was issued and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        let now = tokio::time::Instant::now();
        self.0
            .lock()
            .iter()
            .any(|(t, until)| t == token && now < *until)
    }

    /// Every token issued so far, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.0.lock().iter().map(|(t, _)| t.clone()).collect()
    }
}

/// Who may obtain tokens.
pub enum Client {
    /// A service account: its email and public key.
    Google {
        client_email: String,
        key: DecodingKey,
    },
    /// gcloud's user credentials (`authorized_user`): the refresh-token grant.
    GoogleUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    /// An Entra app registration in `tenant`: its secret, or (workload identity) the federated
    /// token it presents as a client assertion.
    Entra {
        tenant: String,
        client_id: String,
        secret: Option<String>,
        federated_token: Option<String>,
    },
}

/// Behaviour switches, changeable while the fake runs.
pub struct TokenKnobs {
    /// `expires_in` of the next tokens, in seconds.
    pub expires_in: AtomicU64,
    /// Answer every request with this status and the endpoint's error (0 = off).
    pub fail_status: AtomicU16,
    /// Delay before answering.
    pub delay_ms: AtomicU64,
}

struct Inner {
    client: Client,
    book: TokenBook,
    knobs: TokenKnobs,
    /// Requests received (successful or not).
    requests: AtomicUsize,
    /// Why requests were refused, in order.
    refusals: Mutex<Vec<String>>,
    addr: SocketAddr,
}

pub struct FakeTokenEndpoint {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _server: crate::Serving,
}

impl FakeTokenEndpoint {
    pub async fn start(client: Client) -> FakeTokenEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            client,
            book: TokenBook::default(),
            knobs: TokenKnobs {
                expires_in: AtomicU64::new(3599),
                fail_status: AtomicU16::new(0),
                delay_ms: AtomicU64::new(0),
            },
            requests: AtomicUsize::new(0),
            refusals: Mutex::new(Vec::new()),
            addr,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = crate::serve(crate::no_delay(listener), app);
        FakeTokenEndpoint {
            addr,
            inner,
            _server: server,
        }
    }

    /// Google's token URI (a service account file's `token_uri`).
    pub fn google_token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Entra's authority host (`AZURE_AUTHORITY_HOST`).
    pub fn authority(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn book(&self) -> TokenBook {
        self.inner.book.clone()
    }

    pub fn knobs(&self) -> &TokenKnobs {
        &self.inner.knobs
    }

    /// Token requests received.
    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    pub fn refusals(&self) -> Vec<String> {
        self.inner.refusals.lock().clone()
    }
}

/// An OAuth error answer (RFC 6749 §5.2), as both clouds send it.
fn refuse(inner: &Inner, status: StatusCode, error: &str, description: &str) -> Response {
    inner
        .refusals
        .lock()
        .push(format!("{error}: {description}"));
    (
        status,
        [("content-type", "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let delay = inner.knobs.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&bytes).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if parts.method != "POST" || content_type != "application/x-www-form-urlencoded" {
        return refuse(
            &inner,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a form POST is required",
        );
    }
    let fail = inner.knobs.fail_status.load(Ordering::Relaxed);
    if fail != 0 {
        return refuse(
            &inner,
            StatusCode::from_u16(fail).unwrap(),
            "temporarily_unavailable",
            "the fake was told to fail",
        );
    }
    let refused = match &inner.client {
        Client::Google { client_email, key } => {
            let token_uri = format!("http://{}/token", inner.addr);
            if parts.uri.path() != "/token" {
                Some((
                    "invalid_request",
                    format!("no token endpoint at {}", parts.uri.path()),
                ))
            } else if field("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
                Some(("unsupported_grant_type", "Invalid grant_type".to_string()))
            } else {
                google_assertion(field("assertion"), client_email, key, &token_uri)
                    .err()
                    .map(|why| ("invalid_grant", why))
            }
        }
        Client::GoogleUser {
            client_id,
            client_secret,
            refresh_token,
        } => {
            if parts.uri.path() != "/token" || field("grant_type") != "refresh_token" {
                Some(("unsupported_grant_type", "Invalid grant_type".to_string()))
            } else if field("client_id") != client_id || field("client_secret") != client_secret {
                Some((
                    "invalid_client",
                    "The OAuth client was not found.".to_string(),
                ))
            } else if field("refresh_token") != refresh_token {
                Some((
                    "invalid_grant",
                    "Token has been expired or revoked.".to_string(),
                ))
            } else {
                None
            }
        }
        Client::Entra {
            tenant,
            client_id,
            secret,
            federated_token,
        } => {
            let expected_path = format!("/{tenant}/oauth2/v2.0/token");
            let proof_ok = match (secret, federated_token) {
                (Some(s), _) if field("client_secret") == s => true,
                (_, Some(t)) => {
                    field("client_assertion_type")
                        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                        && field("client_assertion") == t
                }
                _ => false,
            };
            if parts.uri.path() != expected_path {
                Some((
                    "invalid_request",
                    format!("AADSTS90002: Tenant not found at {}", parts.uri.path()),
                ))
            } else if field("grant_type") != "client_credentials" {
                Some((
                    "unsupported_grant_type",
                    "AADSTS70003: grant type not supported".into(),
                ))
            } else if field("client_id") != client_id {
                Some((
                    "unauthorized_client",
                    "AADSTS700016: Application not found in the directory".into(),
                ))
            } else if !proof_ok {
                Some((
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided.".into(),
                ))
            } else if field("scope") != "https://cognitiveservices.azure.com/.default" {
                Some((
                    "invalid_scope",
                    format!(
                        "AADSTS70011: The provided scope {} is not valid",
                        field("scope")
                    ),
                ))
            } else {
                None
            }
        }
    };
    if let Some((error, why)) = refused {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        return refuse(&inner, status, error, &why);
    }
    let expires_in = inner.knobs.expires_in.load(Ordering::Relaxed);
    let token = {
        let mut book = inner.book.0.lock();
        let token = format!("ya29.fake-{}", book.len() + 1);
        let until = tokio::time::Instant::now() + Duration::from_secs(expires_in);
        book.push((token.clone(), until));
        token
    };
    let answer = match &inner.client {
        Client::Google { .. } | Client::GoogleUser { .. } => {
            json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
        }
        Client::Entra { .. } => {
            json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token})
        }
    };
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// Checks a service account's assertion as Google does: RS256 signed by its key, `iss` and
/// `sub` its email, `aud` the token URI, the cloud-platform scope, at most an hour of life.
fn google_assertion(
    assertion: &str,
    client_email: &str,
    key: &DecodingKey,
    token_uri: &str,
) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("Invalid JWT: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("Invalid JWT: alg {:?}", header.alg));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_uri]);
    validation.set_issuer(&[client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(assertion, key, &validation)
        .map_err(|e| format!("Invalid JWT Signature or claims: {e}"))?
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if iat <= now + 60 && exp > iat && exp - iat <= 3600 => {}
        _ => return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe".into()),
    }
    if claims["sub"] != client_email {
        return Err("Invalid JWT: sub is not the service account".into());
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == GOOGLE_SCOPE) {
        return Err(format!("Invalid OAuth scope: {scopes}"));
    }
    Ok(())
}
