//! GitHub App endpoints of the fake API: `POST /app/installations/{id}/access_tokens`
//! checks the app's JWT with its public key (RS256) and claims (`iss`, `iat`, `exp`) as
//! GitHub does, issues tokens limited to the repositories and permissions asked for, with
//! an expiry the test chooses, and records each; `GET /repos/{o}/{r}/installation` names
//! a repository's installation. Requests carrying an issued token are refused once it
//! expired, and for repositories it was not minted for.

use super::{State, answer};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the fake knows of one GitHub App.
#[derive(Debug, Default)]
pub struct AppState {
    /// The app's id (the JWT's `iss`).
    pub id: u64,
    /// Its public key: PKCS#1 `RSAPublicKey` DER.
    pub public_key: Vec<u8>,
    /// Installations by repository (`owner/name`).
    pub installations: BTreeMap<String, u64>,
    /// How long the tokens it issues live.
    pub token_lifetime: Duration,
    /// Every token issued, in order.
    pub minted: Vec<Minted>,
    /// JWTs refused, with why.
    pub refused: Vec<String>,
    /// Where `GET /repos/{o}/{r}/tarball/{ref}` redirects, as GitHub sends archives to
    /// codeload.github.com: another origin.
    pub codeload: Option<String>,
}

/// A token the fake issued and what it was asked for.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The installation.
    pub installation: u64,
    /// `repositories` of the request.
    pub repositories: Vec<String>,
    /// `permissions` of the request.
    pub permissions: Value,
    /// The token.
    pub token: String,
    /// When it expires.
    pub expires: SystemTime,
}

impl super::FakeApi {
    /// Makes the fake know GitHub App `id` with public key `public_key` (PKCS#1 DER),
    /// installed as `installation` on `repos`; tokens live an hour unless
    /// [`set_token_lifetime`](Self::set_token_lifetime) says otherwise.
    pub fn add_app(&self, id: u64, public_key: Vec<u8>, installation: u64, repos: &[&str]) {
        self.with(|s| {
            s.app.id = id;
            s.app.public_key = public_key;
            s.app.token_lifetime = Duration::from_secs(3600);
            for repo in repos {
                s.app.installations.insert((*repo).to_owned(), installation);
            }
        });
    }

    /// Installs the app known already as `installation` on `repos` too.
    pub fn add_installation(&self, installation: u64, repos: &[&str]) {
        self.with(|s| {
            for repo in repos {
                s.app.installations.insert((*repo).to_owned(), installation);
            }
        });
    }

    /// How long the tokens issued from now on live.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with(|s| s.app.token_lifetime = lifetime);
    }

    /// Revokes every token issued so far, as GitHub does when an app's key is rotated or
    /// an installation is suspended: later requests with them get 401.
    pub fn revoke_tokens(&self) {
        self.with(|s| s.app.minted.iter_mut().for_each(|minted| minted.expires = UNIX_EPOCH));
    }

    /// The tokens issued so far.
    pub fn minted(&self) -> Vec<Minted> {
        self.with(|s| s.app.minted.clone())
    }
}

/// A fresh app key made with `openssl`, as GitHub hands them out: the private key's PEM
/// file (PKCS#1) written to `dir/app.pem`, and the public key (PKCS#1 DER) for the fake.
pub fn generate_key(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let pem = dir.join("app.pem");
    let der = dir.join("app.pub.der");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["genrsa", "-traditional", "-out", pem.to_str().unwrap(), "2048"]);
    run(&["rsa", "-in", pem.to_str().unwrap(), "-RSAPublicKey_out", "-outform", "DER", "-out", der.to_str().unwrap()]);
    let public = std::fs::read(&der).unwrap();
    (pem, public)
}

/// Answers the app's endpoints, and refuses requests with an issued token that expired or
/// names another repository; `None`: the rest of the fake answers.
pub fn handle(s: &mut State, method: &str, parts: &[&str], authorization: Option<&str>) -> Option<Response> {
    let bearer = authorization.and_then(|value| value.strip_prefix("Bearer "));
    match (method, parts) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            if let Err(why) = check_jwt(&s.app, bearer) {
                s.app.refused.push(why.clone());
                return Some(answer(401, json!({"message": why})));
            }
            let installation: u64 = id.parse().unwrap_or(0);
            let owned: Vec<&String> =
                s.app.installations.iter().filter(|(_, i)| **i == installation).map(|(r, _)| r).collect();
            if owned.is_empty() {
                return Some(answer(404, json!({"message": "Not Found"})));
            }
            let body = s.requests.last().map(|r| r.body.clone()).unwrap_or(Value::Null);
            let repositories: Vec<String> = body["repositories"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            let unknown =
                repositories.iter().any(|name| !owned.iter().any(|full| full.rsplit('/').next() == Some(name)));
            if unknown {
                return Some(answer(
                    422,
                    json!({"message": "There is at least one repository that does not exist or is not accessible to the parent installation."}),
                ));
            }
            let expires = SystemTime::now() + s.app.token_lifetime;
            let token = format!("ghs_fake{}", s.app.minted.len() + 1);
            let permissions = body["permissions"].clone();
            s.app.minted.push(Minted {
                installation,
                repositories: repositories.clone(),
                permissions: permissions.clone(),
                token: token.clone(),
                expires,
            });
            // As GitHub answers: each repository whole, named within the installation's account.
            let repos: Vec<Value> = repositories
                .iter()
                .map(|name| {
                    let full = owned.iter().find(|full| full.rsplit('/').next() == Some(name.as_str())).unwrap();
                    json!({"name": name, "full_name": full})
                })
                .collect();
            Some(answer(
                201,
                json!({"token": token, "expires_at": rfc3339(expires), "permissions": permissions,
                       "repository_selection": "selected", "repositories": repos}),
            ))
        }
        ("GET", ["repos", owner, name, "installation"]) => {
            if let Err(why) = check_jwt(&s.app, bearer) {
                s.app.refused.push(why.clone());
                return Some(answer(401, json!({"message": why})));
            }
            let id = s.app.installations.get(&format!("{owner}/{name}"))?;
            Some(answer(200, json!({"id": id, "app_id": s.app.id, "account": {"login": owner}})))
        }
        _ => {
            if let Some(minted) = s.app.minted.iter().find(|minted| Some(minted.token.as_str()) == bearer) {
                if minted.expires <= SystemTime::now() {
                    return Some(answer(401, json!({"message": "Bad credentials"})));
                }
                if let ["repos", _, name, ..] = parts
                    && !minted.repositories.iter().any(|repo| repo == name)
                {
                    return Some(answer(404, json!({"message": "Not Found"})));
                }
            }
            match (method, parts, &s.app.codeload) {
                // Not GitHub's: a server that reflects the credential it gets, as a badly
                // made one might, so tests can show what a plugin sees then.
                ("GET", ["reflect-authorization"], _) => {
                    Some(answer(200, json!({"authorization": authorization.unwrap_or_default()})))
                }
                ("GET", ["repos", owner, name, "tarball", git_ref], Some(codeload)) => {
                    let location = format!("{codeload}/{owner}/{name}/legacy.tar.gz/{git_ref}");
                    let mut response = answer(302, Value::Null);
                    response.headers_mut().insert("location", location.parse().unwrap());
                    Some(response)
                }
                _ => None,
            }
        }
    }
}

/// Checks a JWT as GitHub does: RS256 by the app's key, `iss` the app id, issued in the
/// past, not expired, and valid for at most ten minutes.
fn check_jwt(app: &AppState, jwt: Option<&str>) -> Result<(), String> {
    let jwt = jwt.ok_or("A JSON web token could not be decoded")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("A JSON web token could not be decoded".into());
    };
    let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("'alg' must be RS256, got {}", header["alg"]));
    }
    let public = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &app.public_key);
    let signed = format!("{}.{}", parts[0], parts[1]);
    public
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "the JWT's signature does not verify with the app's public key".to_owned())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let iss = claims["iss"].as_str().map(str::to_owned).or_else(|| claims["iss"].as_u64().map(|i| i.to_string()));
    if iss.as_deref() != Some(app.id.to_string().as_str()) {
        return Err(format!("'iss' is {}, not the app's id {}", claims["iss"], app.id));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("'iat' and 'exp' are required".into());
    };
    if iat > now {
        return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past".into());
    }
    if exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time".into());
    }
    if exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(())
}

/// `2026-11-28T09:00:00Z`, as GitHub writes times.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    jiff::Timestamp::from_second(i64::try_from(seconds).unwrap()).unwrap().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_as_github_writes_them() {
        let at = |s: u64| super::rfc3339(super::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_795_856_400), "2026-11-28T09:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    }
}
