//! SigV4 signing of Bedrock requests with the `aws-sigv4` crate, once per attempt, after the
//! body is final; and where the keys come from (the config, the environment, a profile file).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4::SigningParams;
use http::{Request, header};
use parking_lot::Mutex;
use tollgate_shared::config::model::AwsAuth;
use tollgate_shared::files;

use crate::clock::{self, Clock, Instant};

/// The service Bedrock's runtime signs as.
const SERVICE: &str = "bedrock";

/// Signs `req` (whose body is `body`) for `region`: adds `x-amz-date`, `authorization` and,
/// with a session token, `x-amz-security-token`. Signed: `host`, `content-type` (when set) and
/// those.
pub fn sign<B>(
    req: &mut Request<B>,
    body: &[u8],
    keys: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<(), String> {
    let identity = keys.clone().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?;
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut signed = vec![("host", host.as_str())];
    if let Some(t) = &content_type {
        signed.push(("content-type", t.as_str()));
    }
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri.as_str(),
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params.into())
        .map_err(|e| e.to_string())?
        .into_parts();
    req.headers_mut().remove("x-amz-security-token");
    instructions.apply_to_request_http1x(req);
    Ok(())
}

/// The keys to sign with: the configured ones, else the proxy's environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), else the profile
/// `AWS_PROFILE` (`default`) of `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`).
/// `Err` says how to provide them.
pub fn credentials(auth: &AwsAuth) -> Result<Credentials, String> {
    if let Some(keys) = &auth.keys {
        let empty: Vec<String> = [&keys.access_key_id, &keys.secret_access_key]
            .into_iter()
            .chain(keys.session_token.as_ref())
            .filter(|s| s.expose().is_empty())
            .flat_map(|s| s.variables())
            .collect();
        if !empty.is_empty() {
            return Err(format!(
                "set {} in the gateway's environment and restart it",
                empty.join(" and ")
            ));
        }
        return Ok(keys_of(
            keys.access_key_id.expose(),
            keys.secret_access_key.expose(),
            keys.session_token.as_ref().map(|t| t.expose()),
        ));
    }
    let env = environment();
    if let Some(keys) = &env.keys {
        return Ok(keys.clone());
    }
    env.profile_file.read().ok_or_else(|| {
        format!(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the gateway's environment, or profile `{}` in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)",
            env.profile_file.profile
        )
    })
}

fn keys_of(id: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials::new(id, secret, token.map(str::to_string), None, "tollgate")
}

/// Where the proxy's environment says keys are, read once: it does not change while the proxy
/// runs.
struct Environment {
    keys: Option<Credentials>,
    profile_file: ProfileFile,
}

fn environment() -> &'static Environment {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Some(keys_of(&id, &secret, var("AWS_SESSION_TOKEN").as_deref()))
            }
            _ => None,
        };
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        Environment {
            keys,
            profile_file: ProfileFile::new(file, profile, clock::system()),
        }
    })
}

/// How long a profile file's keys are used before its modification time is looked at again:
/// requests do not each pay a `stat` (a blocking call), and keys rotated in place are picked
/// up within this.
const PROFILE_RECHECK: Duration = Duration::from_secs(1);

/// One profile of a credentials file, its keys kept until the file changes.
struct ProfileFile {
    file: Option<PathBuf>,
    profile: String,
    clock: Clock,
    read: Mutex<Option<ProfileRead>>,
}

/// The file as last looked at.
struct ProfileRead {
    /// `None`: the file could not be read.
    modified: Option<SystemTime>,
    checked: Instant,
    keys: Option<Credentials>,
}

impl ProfileFile {
    fn new(file: Option<PathBuf>, profile: String, clock: Clock) -> ProfileFile {
        ProfileFile {
            file,
            profile,
            clock,
            read: Mutex::new(None),
        }
    }

    fn read(&self) -> Option<Credentials> {
        let file = self.file.as_ref()?;
        let now = self.clock.now();
        let mut last = self.read.lock();
        if let Some(last) = last.as_ref()
            && now.saturating_duration_since(last.checked) < PROFILE_RECHECK
        {
            return last.keys.clone();
        }
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        if let Some(last) = last.as_mut().filter(|l| l.modified == modified) {
            last.checked = now;
            return last.keys.clone();
        }
        let keys = modified
            .and_then(|_| files::read_to_string(file, files::MAX_SECRET).ok())
            .and_then(|text| profile_keys(&text, &self.profile));
        *last = Some(ProfileRead {
            modified,
            checked: now,
            keys: keys.clone(),
        });
        keys
    }
}

/// The keys of `[profile]` in an AWS credentials file (INI: `aws_access_key_id = ...`).
fn profile_keys(text: &str, profile: &str) -> Option<Credentials> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| inside) else {
            continue;
        };
        let value = Some(value.trim().to_string());
        match key.trim() {
            "aws_access_key_id" => id = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    Some(keys_of(&id?, &secret?, token.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn profiles_are_read_by_name() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let ci = profile_keys(text, "ci").unwrap();
        assert_eq!(
            (
                ci.access_key_id(),
                ci.secret_access_key(),
                ci.session_token()
            ),
            ("C", "D", Some("T"))
        );
        assert_eq!(profile_keys(text, "default").unwrap().access_key_id(), "A");
        assert!(profile_keys(text, "other").is_none());
    }

    /// A profile file is looked at once per [`PROFILE_RECHECK`], not once per request; keys
    /// rotated in place are used after it.
    #[test]
    fn profile_files_are_rechecked_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        let write = |id: &str, modified: SystemTime| {
            std::fs::write(
                &file,
                format!("[ci]\naws_access_key_id = {id}\naws_secret_access_key = S\n"),
            )
            .unwrap();
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(modified)
                .unwrap();
        };
        let (clock, time) = Clock::mock();
        let cache = ProfileFile::new(Some(file.clone()), "ci".into(), clock);
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        write("OLD", epoch);
        let id = || cache.read().map(|k| k.access_key_id().to_string());
        assert_eq!(id().as_deref(), Some("OLD"));
        write("NEW", epoch + Duration::from_secs(10));
        assert_eq!(id().as_deref(), Some("OLD"), "no stat within the second");
        time.increment(PROFILE_RECHECK);
        assert_eq!(id().as_deref(), Some("NEW"), "rotated keys are picked up");
        std::fs::remove_file(&file).unwrap();
        time.increment(PROFILE_RECHECK);
        assert_eq!(id(), None, "a file that is gone has no keys");
    }

    /// The scope names the date, region and service; a session token is sent and signed.
    /// (The fake Bedrock verifies whole signatures end to end.)
    #[test]
    fn signs_scope_date_and_session_token() {
        let keys = keys_of(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let mut req =
            Request::post("https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse")
                .header(header::CONTENT_TYPE, "application/json")
                .body(())
                .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        sign(&mut req, b"{}", &keys, "us-east-1", now).unwrap();
        let auth = req.headers()[header::AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ), "{auth}");
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        let with_token = keys_of("A", "B", Some("tok"));
        sign(&mut req, b"{}", &with_token, "us-east-1", now).unwrap();
        assert_eq!(req.headers()["x-amz-security-token"], "tok");
        assert!(
            req.headers()[header::AUTHORIZATION]
                .to_str()
                .unwrap()
                .contains("x-amz-security-token")
        );
    }
}
