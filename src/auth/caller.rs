//! `AuthUser`, the authenticated caller of a request, and what it may touch (`scope`,
//! `may_write`, `may_read`, ...). Handlers take it as an extractor; it only reads what the
//! authentication layer (`super::layer`) put on the request, and checks no token itself.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use crate::domain::{Actor, Role, Scope, SellerId, User, Username};
use crate::error::ApiError;
use crate::middleware::{ClientIp, RequestId};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub seller_ids: Vec<SellerId>,
    /// The id of the request the caller is making (`X-Request-ID`), for the ledger and the
    /// audit log.
    pub request_id: Option<String>,
    /// The address the request came from, for the audit log.
    pub client_ip: Option<IpAddr>,
}

/// The request extension in which the authentication layer leaves the caller. Crate-private,
/// so that nothing outside the crate can put a caller on a request.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Arc<AuthUser>);

impl AuthUser {
    /// Who is making a change, as the ledger and the audit log record it.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.id),
            username: Some(self.username.as_str().to_owned()),
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The sellers whose rows this caller may see and change.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::Seller => Scope::Sellers(self.seller_ids.clone()),
        }
    }

    fn owns(&self, seller: &SellerId) -> bool {
        self.role == Role::Admin || self.seller_ids.contains(seller)
    }

    /// Writing another seller's row is forbidden (403).
    pub fn may_write(&self, seller: &SellerId) -> Result<(), ApiError> {
        if self.owns(seller) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "you may not write data of this seller_id".into(),
            ))
        }
    }

    /// Writing a batch with any foreign seller is forbidden (403), naming the first such item.
    pub fn may_write_all<'s>(
        &self,
        sellers: impl Iterator<Item = &'s SellerId>,
    ) -> Result<(), ApiError> {
        for (index, seller) in sellers.enumerate() {
            if !self.owns(seller) {
                return Err(ApiError::Forbidden(
                    format!("item {index}: you may not write data of this seller_id").into(),
                ));
            }
        }
        Ok(())
    }

    /// Reading another seller's row by id looks exactly like a missing row (404).
    pub fn may_read(&self, seller: &SellerId) -> Result<(), ApiError> {
        if self.owns(seller) {
            Ok(())
        } else {
            Err(ApiError::NotFound("no such resource"))
        }
    }

    /// Filtering a list by a foreign seller is forbidden (403).
    pub fn may_filter(&self, seller: Option<&SellerId>) -> Result<(), ApiError> {
        seller.map_or(Ok(()), |s| {
            if self.owns(s) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "you may not read data of this seller_id".into(),
                ))
            }
        })
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }
}

impl From<User> for AuthUser {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            role: user.role,
            seller_ids: user.seller_ids,
            request_id: None,
            client_ip: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    /// The caller the authentication layer found. Without one, the handler sits on the public
    /// router by mistake: refuse rather than serve it anonymously.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(user)) => Ok(AuthUser {
                request_id: parts
                    .extensions
                    .get::<RequestId>()
                    .map(|id| id.as_str().to_owned()),
                client_ip: parts.extensions.get::<ClientIp>().and_then(|ip| ip.0),
                ..AuthUser::clone(user)
            }),
            None => {
                tracing::error!(
                    "a handler that takes AuthUser is not behind the authentication layer"
                );
                Err(ApiError::Unauthorized {
                    token_sent: parts.headers.contains_key(header::AUTHORIZATION),
                })
            }
        }
    }
}
