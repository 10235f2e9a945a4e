//! Optional bearer-token auth (`--auth-token-file`): every OTLP, query, UI and Flight SQL
//! request must carry `Authorization: Bearer <token>`, and the token decides the tenant.
//!
//! The file holds one `<token> <tenant>` per line (`#` starts a comment). A request whose
//! `X-Scope-OrgID` names another tenant than its token's is refused (403 / PERMISSION_DENIED);
//! otherwise the header is set to the token's tenant before the request goes on, so every
//! handler below sees only that tenant. `/healthz`, `/readyz` and `/metrics` stay open for
//! probes and scrapers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spanlake_collector::TENANT_HEADER;
use spanlake_storage::TenantId;

/// Tokens and the tenant each one may use.
#[derive(Debug, Clone)]
pub struct Tokens(Arc<HashMap<String, String>>);

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not in the file.
    Unauthenticated(&'static str),
    /// A valid token, but `X-Scope-OrgID` names another tenant.
    WrongTenant(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(why) => write!(f, "unauthenticated: {why}"),
            Self::WrongTenant(tenant) => {
                write!(f, "this token may not read or write tenant {tenant:?}")
            }
        }
    }
}

impl Tokens {
    /// Reads `<token> <tenant>` lines.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(token), Some(tenant), None) = (words.next(), words.next(), words.next())
            else {
                bail!("{}:{}: expected `<token> <tenant>`", path.display(), n + 1);
            };
            TenantId::new(tenant)
                .with_context(|| format!("{}:{}: bad tenant", path.display(), n + 1))?;
            if tokens
                .insert(token.to_string(), tenant.to_string())
                .is_some()
            {
                bail!("{}:{}: the token appears twice", path.display(), n + 1);
            }
        }
        if tokens.is_empty() {
            bail!("{} holds no tokens", path.display());
        }
        Ok(Self(Arc::new(tokens)))
    }

    /// The tenant a request may use, from its `authorization` and `x-scope-orgid` values.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        tenant: Option<&[u8]>,
    ) -> Result<String, Denied> {
        let value = authorization.ok_or(Denied::Unauthenticated("no Authorization header"))?;
        let value = std::str::from_utf8(value)
            .map_err(|_| Denied::Unauthenticated("Authorization is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(Denied::Unauthenticated(
                "Authorization is not `Bearer <token>`",
            ))?
            .trim();
        let allowed = self
            .0
            .get(token)
            .ok_or(Denied::Unauthenticated("unknown token"))?;
        match tenant.map(|t| String::from_utf8_lossy(t).trim().to_string()) {
            Some(asked) if !asked.is_empty() && &asked != allowed => {
                Err(Denied::WrongTenant(asked))
            }
            _ => Ok(allowed.clone()),
        }
    }
}

fn check_headers(tokens: &Tokens, headers: &mut HeaderMap) -> Result<(), Denied> {
    let tenant = tokens.check(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        headers.get(TENANT_HEADER).map(HeaderValue::as_bytes),
    )?;
    let value = HeaderValue::from_str(&tenant)
        .map_err(|_| Denied::Unauthenticated("tenant is not a header value"))?;
    headers.insert(TENANT_HEADER, value);
    Ok(())
}

/// The HTTP middleware.
pub async fn http(State(tokens): State<Tokens>, mut request: Request, next: Next) -> Response {
    match check_headers(&tokens, request.headers_mut()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let status = match denied {
                Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                Denied::WrongTenant(_) => StatusCode::FORBIDDEN,
            };
            let mut response = (status, format!("{denied}\n")).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"spanlake\""),
                );
            }
            response
        }
    }
}

/// The gRPC interceptor (OTLP/gRPC and Flight SQL); lets everything through without tokens.
pub fn grpc(
    tokens: Option<Tokens>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request: tonic::Request<()>| {
        let Some(tokens) = &tokens else {
            return Ok(request);
        };
        let metadata = request.metadata();
        let tenant = tokens
            .check(
                metadata.get("authorization").map(|v| v.as_bytes()),
                metadata.get(TENANT_HEADER).map(|v| v.as_bytes()),
            )
            .map_err(|denied| match denied {
                Denied::Unauthenticated(_) => tonic::Status::unauthenticated(denied.to_string()),
                Denied::WrongTenant(_) => tonic::Status::permission_denied(denied.to_string()),
            })?;
        let value = tenant
            .parse()
            .map_err(|_| tonic::Status::internal("tenant is not a metadata value"))?;
        request.metadata_mut().insert(TENANT_HEADER, value);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# team tokens\ns3cret team-a\nother team-b # ops\n").unwrap();
        Tokens::load(&path).unwrap()
    }

    #[test]
    fn tokens_decide_the_tenant() {
        let t = tokens();
        assert_eq!(t.check(Some(b"Bearer s3cret"), None), Ok("team-a".into()));
        assert_eq!(
            t.check(Some(b"Bearer s3cret"), Some(b"team-a")),
            Ok("team-a".into())
        );
        assert_eq!(
            t.check(Some(b"Bearer s3cret"), Some(b"team-b")),
            Err(Denied::WrongTenant("team-b".into()))
        );
        assert!(matches!(
            t.check(None, None),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            t.check(Some(b"Bearer nope"), None),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            t.check(Some(b"Basic s3cret"), None),
            Err(Denied::Unauthenticated(_))
        ));
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "s3cret\n").unwrap();
        let e = Tokens::load(&path).unwrap_err().to_string();
        assert!(e.contains(":1: expected"), "{e}");
        std::fs::write(&path, "a t\na u\n").unwrap();
        assert!(
            Tokens::load(&path)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        std::fs::write(&path, "a bad/tenant\n").unwrap();
        assert!(
            Tokens::load(&path)
                .unwrap_err()
                .to_string()
                .contains("bad tenant")
        );
    }
}
