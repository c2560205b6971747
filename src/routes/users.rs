//! User management, for admins only: create, list, get and change users. Every route needs a
//! token (protected router).
//! Password hashes are never part of any response.

use axum::extract::State;
use axum::Json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::domain::{
    distinct_sellers, NewPassword, NewUser, Role, SellerId, User, UserPatch, Username,
};
use crate::error::{ApiError, Envelope};
use crate::extract::{FromJsonObject, IdPath, ObjectReader, QueryReader, ValidJson};
use crate::routes::Page;
use crate::store::StoreError;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user))
}

/// `POST /api/v1/users` body.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"username": "seller.alice", "password": "a long passphrase",
    "role": "seller", "seller_ids": ["A1SELLER0001"]}))]
pub struct CreateUserRequest {
    pub username: Username,
    /// 12 to 128 characters.
    #[schema(value_type = String, format = Password)]
    pub password: NewPassword,
    pub role: Role,
    /// The sellers this user acts for; a seller needs at least one.
    pub seller_ids: Vec<SellerId>,
}

impl FromJsonObject for CreateUserRequest {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let username = o.text("username", Username::parse);
        let password = o.text("password", NewPassword::parse);
        let role = o.text("role", Role::parse);
        let seller_ids = if o.has("seller_ids") {
            o.text_list("seller_ids", SellerId::parse)
        } else {
            Some(Vec::new())
        };
        if let (Some(role), Some(sellers)) = (role, &seller_ids) {
            if let Err(problem) = role.check_sellers(sellers) {
                o.fail("seller_ids", problem);
                return None;
            }
        }
        Some(Self {
            username: username?,
            password: password?,
            role: role?,
            seller_ids: seller_ids?,
        })
    }
}

/// `PATCH /api/v1/users/{id}` body: any of the fields; absent ones stay as they are.
#[derive(Debug, Default, ToSchema)]
#[schema(example = json!({"is_active": false}))]
pub struct UpdateUserRequest {
    pub is_active: Option<bool>,
    pub role: Option<Role>,
    pub seller_ids: Option<Vec<SellerId>>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<NewPassword>,
}

/// `None` when the field was present but invalid; `Some(None)` when it was absent.
fn optional<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    read.map_or(Some(None), |value| value.map(Some))
}

impl FromJsonObject for UpdateUserRequest {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let is_active = o.has("is_active").then(|| o.boolean("is_active"));
        let role = o.has("role").then(|| o.text("role", Role::parse));
        let seller_ids = o
            .has("seller_ids")
            .then(|| o.text_list("seller_ids", SellerId::parse));
        let password = o
            .has("password")
            .then(|| o.text("password", NewPassword::parse));
        if let Some(Some(sellers)) = &seller_ids {
            // Whether the user may be left without sellers depends on their role, which may be
            // the stored one: `update_user` checks that.
            if let Err(problem) = distinct_sellers(sellers) {
                o.fail("seller_ids", problem);
                return None;
            }
        }
        let patch = Self {
            is_active: optional(is_active)?,
            role: optional(role)?,
            seller_ids: optional(seller_ids)?,
            password: optional(password)?,
        };
        if patch.is_active.is_none()
            && patch.role.is_none()
            && patch.seller_ids.is_none()
            && patch.password.is_none()
        {
            o.fail(
                "body",
                "must change at least one of is_active, role, seller_ids, password",
            );
            return None;
        }
        Some(patch)
    }
}

/// Create a user (admin only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "the new user", body = Envelope<User>),
        (status = 409, description = "the username is taken", body = crate::error::ErrorBody,
            example = json!({"code": 409, "error_code": "CONFLICT", "message": "username already taken", "request_id": "4f1c2a9e0b7d43c8a1e5f0c2d9b8a7e6"})),
        crate::routes::AdminOnly,
        crate::routes::WriteErrors,
    ))]
pub async fn create_user(
    State(app): State<AppState>,
    caller: AuthUser,
    ValidJson(req): ValidJson<CreateUserRequest>,
) -> Result<Json<Envelope<User>>, ApiError> {
    caller.require_admin()?;
    let password_hash = app.auth.passwords.hash(req.password.expose()).await?;
    let new = NewUser {
        username: req.username,
        password_hash,
        role: req.role,
        seller_ids: req.seller_ids,
    };
    let created = app
        .store
        .create_user(&new, &caller.actor())
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict("username already taken"),
            other => other.into(),
        })?;
    Ok(Json(Envelope::success(created)))
}

/// Every user, ordered by id, one page at a time (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(crate::routes::PageParams),
    responses(
        (status = 200, description = "one page of users", body = Envelope<Page<User>>),
        crate::routes::AdminOnly,
        crate::routes::ListErrors,
    ))]
pub async fn list_users(
    State(app): State<AppState>,
    caller: AuthUser,
    mut query: QueryReader,
) -> Result<Json<Envelope<Page<User>>>, ApiError> {
    caller.require_admin()?;
    let page = query.page();
    query.finish()?;
    let listed = app.store.list_users(page).await?;
    Ok(Json(Envelope::success(Page::new(listed, page))))
}

/// One user by id (admin only).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "the user's id", minimum = 1)),
    responses(
        (status = 200, description = "the user", body = Envelope<User>),
        crate::routes::AdminOnly,
        crate::routes::ReadErrors,
    ))]
pub async fn get_user(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
) -> Result<Json<Envelope<User>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(Envelope::success(app.store.get_user(id).await?)))
}

/// Change a user's active flag, role, sellers or password (admin only).
///
/// A deactivation or a new password ends every session of the user: their refresh tokens at
/// once, their access tokens within seconds (`docs/auth.md`, Sessions). A change of role or
/// sellers applies to access tokens already issued within seconds. A seller must keep at least
/// one seller (422). Admins cannot deactivate or demote themselves, so that the last admin
/// cannot lock everyone out.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "the user's id", minimum = 1)),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "the changed user", body = Envelope<User>),
        crate::routes::AdminOnly,
        crate::routes::ReadErrors,
    ))]
pub async fn update_user(
    State(app): State<AppState>,
    caller: AuthUser,
    IdPath(id): IdPath,
    ValidJson(req): ValidJson<UpdateUserRequest>,
) -> Result<Json<Envelope<User>>, ApiError> {
    caller.require_admin()?;
    if id == caller.id && (req.is_active == Some(false) || req.role == Some(Role::Seller)) {
        return Err(ApiError::invalid(
            "body",
            "you cannot deactivate or demote your own account",
        ));
    }
    if req.role == Some(Role::Seller) || req.seller_ids.as_ref().is_some_and(Vec::is_empty) {
        // Whether the user ends up a seller without sellers depends on what is stored.
        let current = app.store.get_user(id).await?;
        let role = req.role.unwrap_or(current.role);
        let sellers = req.seller_ids.as_deref().unwrap_or(&current.seller_ids);
        role.check_sellers(sellers)
            .map_err(|problem| ApiError::invalid("seller_ids", problem))?;
    }
    let password_hash = match &req.password {
        Some(password) => Some(app.auth.passwords.hash(password.expose()).await?),
        None => None,
    };
    let patch = UserPatch {
        is_active: req.is_active,
        role: req.role,
        seller_ids: req.seller_ids,
        password_hash,
    };
    let updated = app.store.update_user(id, &patch, &caller.actor()).await?;
    app.auth.principals.forget(id);
    Ok(Json(Envelope::success(updated)))
}
