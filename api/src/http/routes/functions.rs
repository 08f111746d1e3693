//! Function CRUD: `/functions/` and `/functions/{id}`, within the key's namespace: a function
//! of another namespace is 404, exactly as if it did not exist.

use crate::domain::auth::{Principal, Scope};
use crate::http::bodies::Message;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query, check_page};
use crate::http::state::AppState;
use crate::services::{FunctionInput, SaveOptions, valid_name};
use crate::store::{self, Build, Function};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bodies larger than a single-source function's (packages) read at once; the others wait.
/// Each holds the body, the zip and its files in memory, up to a few hundred MB.
pub const UPLOADS_AT_ONCE: usize = 2;

/// What [`admit_upload`] needs.
#[derive(Clone)]
pub struct UploadGuard {
    pub state: AppState,
    pub permits: Arc<Semaphore>,
    /// The largest body of a function saved with `code`: larger ones carry a package.
    pub source_body_max: usize,
}

/// Lets a body larger than a single-source function's be read only for a key that may save
/// functions, and only [`UPLOADS_AT_ONCE`] of them at a time: a key without `manage` must not
/// make the api buffer tens of MB, nor a key hundreds of them at once (a refused body is not
/// read: `admission::answer_unread`). Smaller bodies pass through (their handler checks the
/// scope as usual). Behind `admission::require_key`, which verified the key already.
pub async fn admit_upload(
    State(guard): State<UploadGuard>,
    request: Request,
    next: Next,
) -> Response {
    let UploadGuard {
        state,
        permits,
        source_body_max,
    } = guard;
    let verified = request
        .extensions()
        .get::<Principal>()
        .map(|principal| principal.require(Scope::Manage));
    let may_save_functions = async |headers: &HeaderMap| match verified {
        Some(manages) => manages.map_err(ApiError::from),
        None => Principal::from_headers(&state, headers)
            .await?
            .require(Scope::Manage)
            .map_err(ApiError::from),
    };
    let upload = Upload {
        source_body_max,
        permits: &permits,
    };
    upload
        .admit(request, may_save_functions, async move |request| {
            next.run(request).await
        })
        .await
}

/// [`admit_upload`]'s rule, apart from how the key is checked and what runs next.
struct Upload<'a> {
    source_body_max: usize,
    permits: &'a Semaphore,
}

impl Upload<'_> {
    /// Runs `next` on `request` at once if its body is not larger than a single-source
    /// function's; else once `may_upload` allowed it and a permit is free. A refused body is
    /// answered unread and the connection closed.
    async fn admit(
        &self,
        request: Request,
        may_upload: impl AsyncFnOnce(&HeaderMap) -> Result<(), ApiError>,
        next: impl AsyncFnOnce(Request) -> Response,
    ) -> Response {
        let declared = crate::http::limits::declared_length(request.headers());
        let chunked =
            declared.is_none() && request.headers().contains_key(header::TRANSFER_ENCODING);
        let large = declared.is_some_and(|length| length > self.source_body_max as u64) || chunked;
        if !large {
            return next(request).await;
        }
        if let Err(error) = may_upload(request.headers()).await {
            return crate::http::admission::answer_unread(error, request);
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return ApiError::Overloaded("the api is shutting down".into()).into_response();
        };
        next(request).await
    }
}

/// `?skip=0&limit=100&name=hello`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only the function of this name: a list of one, or empty when there is none.
    #[serde(default)]
    #[param(
        pattern = "^[A-Za-z0-9_-]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "hello"
    )]
    name: Option<String>,
    /// Functions to pass over, in id order.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: i64,
    /// Functions to list.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// `?wait=true`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaveQuery {
    /// Answer once the dependencies' build has ended (at most `BUILD_WAIT_SECS`), rather than
    /// at once with the build pending; at once anyway when no worker takes builds.
    #[serde(default)]
    wait: bool,
}

/// What the caller and `?wait` ask of a save.
fn save_options(principal: &Principal, query: &SaveQuery) -> SaveOptions {
    SaveOptions {
        may_catch_all: principal.has(Scope::Admin),
        wait: query.wait,
    }
}

/// A function as `principal` may see it: `env` values only for `manage`.
fn view(function: &Function, principal: &Principal) -> Value {
    let mut value = serde_json::to_value(function).expect("a function always serializes");
    if !principal.has(Scope::Manage)
        && let Some(env) = value.get_mut("env").and_then(Value::as_object_mut)
    {
        for secret in env.values_mut() {
            *secret = Value::Null;
        }
    }
    value
}

/// Creates a function in the key's namespace (`manage` scope).
#[utoipa::path(
    post,
    path = "/functions/",
    tag = "functions",
    summary = "Create a function",
    params(SaveQuery),
    request_body = FunctionInput,
    responses(
        (status = 201, description = "Created, at version 1.", body = Function),
        (status = 404, description = "`namespace_not_found`: the key's namespace was deleted meanwhile.", body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken in the namespace, or the route anywhere.", body = ErrorBody),
        (status = 429, description = "`quota_functions`: the namespace holds its `functions` quota.", body = ErrorBody),
        crate::http::responses::SaveBodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn create_function(
    principal: Principal,
    State(state): State<AppState>,
    Query(options): Query<SaveQuery>,
    Json(input): Json<FunctionInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    principal.require(Scope::Manage)?;
    let function = state
        .functions
        .create(
            &principal.namespace,
            input,
            save_options(&principal, &options),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(&function, &principal))))
}

/// The key's namespace's functions, in id order, or the one of `?name=` (`manage` or `read`
/// scope; `read` keys see `env` values as null).
#[utoipa::path(
    get,
    path = "/functions/",
    tag = "functions",
    summary = "List functions",
    params(Page),
    responses(
        (status = 200, description = "A page of functions.", body = Vec<Function>),
        (status = 422, description = "`invalid_request`: `skip` or `limit` out of range, or `name` no function name.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_functions(
    principal: Principal,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<axum::Json<Vec<Value>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    check_page(page.skip, page.limit, 1000)?;
    if let Some(name) = &page.name
        && !valid_name(name)
    {
        return Err(ApiError::Invalid(format!(
            "name must be a function name (1 to 64 characters of A-Z, a-z, 0-9, _ and -); got {name:?}"
        )));
    }
    let functions = store::list_functions(
        &state.db,
        &principal.namespace,
        page.name.as_deref(),
        page.skip,
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        functions.iter().map(|f| view(f, &principal)).collect(),
    ))
}

/// One function (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Get a function",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "The function.", body = Function),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    store::get_function(&state.db, &principal.namespace, id)
        .await?
        .map(|function| axum::Json(view(&function, &principal)))
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))
}

/// Replaces a function's definition (`manage` scope); its version goes up by one and the next
/// call runs the new code.
#[utoipa::path(
    put,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Update a function",
    params(crate::http::responses::FunctionId, SaveQuery),
    request_body = FunctionInput,
    responses(
        (status = 200, description = "Updated, at the next version.", body = Function),
        (status = 404, description = "`function_not_found` or `namespace_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the new name or route is taken.", body = ErrorBody),
        crate::http::responses::SaveBodyErrors,
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn update_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(options): Query<SaveQuery>,
    Json(input): Json<FunctionInput>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require(Scope::Manage)?;
    let function = state
        .functions
        .update(
            &principal.namespace,
            id,
            input,
            save_options(&principal, &options),
        )
        .await?;
    Ok(axum::Json(view(&function, &principal)))
}

/// The build of a function's dependencies, with its whole log (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}/build",
    tag = "functions",
    summary = "Get a function's dependency build",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "The build, its whole log included; `null` when the function has no dependencies (nothing to build).", body = Option<Build>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function_build(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Option<Build>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    match store::get_function_build(&state.db, &principal.namespace, id).await? {
        Some(build) => Ok(axum::Json(build)),
        None => Err(ApiError::FunctionNotFound(id.to_string())),
    }
}

/// Deletes a function (`manage` scope); its warm containers go too.
#[utoipa::path(
    delete,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Delete a function",
    params(crate::http::responses::FunctionId),
    responses(
        (status = 200, description = "Deleted.", body = Message, example = json!({"message": "Function deleted"})),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::http::responses::KeyErrors,
        crate::http::responses::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Message>, ApiError> {
    principal.require(Scope::Manage)?;
    if !state.functions.delete(&principal.namespace, id).await? {
        return Err(ApiError::FunctionNotFound(id.to_string()));
    }
    Ok(axum::Json(Message::new("Function deleted")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::extract::FromRequestParts;
    use futures_util::StreamExt as _;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn principal(scopes: &[Scope]) -> Principal {
        Principal {
            key_id: Some("k".into()),
            namespace: "default".into(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn env_values_are_shown_only_to_keys_that_manage() {
        let function = Function {
            env: [("TOKEN".to_owned(), "s3cret".to_owned())].into(),
            ..Function::example()
        };
        let hidden = view(&function, &principal(&[Scope::Read]));
        assert_eq!(hidden["env"], serde_json::json!({"TOKEN": null}));
        // Everything else is shown as it is.
        assert_eq!(hidden["name"], "hello");
        assert_eq!(hidden["id"], 1);
        let mut shown = hidden.clone();
        shown["env"]["TOKEN"] = "s3cret".into();
        assert_eq!(shown, serde_json::to_value(&function).unwrap());
        for scopes in [
            &[Scope::Manage][..],
            &[Scope::Admin],
            &[Scope::Read, Scope::Manage],
        ] {
            let seen = view(&function, &principal(scopes));
            assert_eq!(seen["env"]["TOKEN"], "s3cret", "{scopes:?}");
        }
    }

    #[test]
    fn only_an_admin_may_take_a_catch_all_route_and_wait_is_the_querys() {
        let cases = [
            (&[Scope::Admin][..], false, (true, false)),
            (&[Scope::Admin][..], true, (true, true)),
            (&[Scope::Manage][..], true, (false, true)),
            (&[Scope::Manage, Scope::Read][..], false, (false, false)),
        ];
        for (scopes, wait, expected) in cases {
            let options = save_options(&principal(scopes), &SaveQuery { wait });
            assert_eq!(
                (options.may_catch_all, options.wait),
                expected,
                "{scopes:?}"
            );
        }
    }

    async fn query<T: serde::de::DeserializeOwned + Send>(uri: &str) -> Result<T, ApiError> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        Query::<T>::from_request_parts(&mut parts, &())
            .await
            .map(|Query(value)| value)
    }

    #[tokio::test]
    async fn the_query_defaults_are_the_first_hundred_and_no_wait() {
        let page: Page = query("/functions/").await.expect("parsed");
        assert_eq!((page.skip, page.limit), (0, 100));
        assert_eq!(page.name, None);
        let page: Page = query("/functions/?skip=5&limit=7&name=hello")
            .await
            .expect("parsed");
        assert_eq!((page.skip, page.limit), (5, 7));
        assert_eq!(page.name.as_deref(), Some("hello"));
        assert!(query::<Page>("/functions/?limit=many").await.is_err());

        let save: SaveQuery = query("/functions/").await.expect("parsed");
        assert!(!save.wait);
        let save: SaveQuery = query("/functions/?wait=true").await.expect("parsed");
        assert!(save.wait);
        assert!(query::<SaveQuery>("/functions/?wait=soon").await.is_err());
    }

    /// What a test of [`Upload::admit`] saw: whether the key was asked for and `next` ran.
    #[derive(Default)]
    struct Seen {
        asked: AtomicBool,
        ran: AtomicBool,
        /// Chunks of the body read (by `next`, or discarded).
        chunks_read: Arc<AtomicUsize>,
    }

    const SOURCE_BODY_MAX: usize = 100;

    /// A request whose body, `chunks` chunks of `chunk` bytes, counts the chunks read.
    fn request(headers: &[(&str, &str)], chunks: usize, chunk: usize, seen: &Seen) -> Request {
        let read = seen.chunks_read.clone();
        let body = futures_util::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; chunk]))),
        )
        .inspect(move |_| {
            read.fetch_add(1, Ordering::SeqCst);
        });
        let mut builder = axum::http::Request::post("/functions/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from_stream(body)).unwrap()
    }

    async fn admit(
        permits: &Semaphore,
        request: Request,
        allowed: Result<(), ApiError>,
        seen: &Seen,
    ) -> Response {
        let upload = Upload {
            source_body_max: SOURCE_BODY_MAX,
            permits,
        };
        upload
            .admit(
                request,
                async |_: &HeaderMap| {
                    seen.asked.store(true, Ordering::SeqCst);
                    allowed
                },
                async |request: Request| {
                    seen.ran.store(true, Ordering::SeqCst);
                    let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
                    StatusCode::CREATED.into_response()
                },
            )
            .await
    }

    fn refused() -> Result<(), ApiError> {
        Err(ApiError::Unauthorized(
            crate::domain::auth::AuthError::Missing,
        ))
    }

    #[tokio::test]
    async fn a_body_no_larger_than_a_sources_passes_without_its_key_checked() {
        let permits = Semaphore::new(0);
        let seen = Seen::default();
        let small = request(&[("content-length", "100")], 1, 100, &seen);
        // Not even a permit is needed: none is free.
        let response = admit(&permits, small, refused(), &seen).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(!seen.asked.load(Ordering::SeqCst));
        assert!(seen.ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_larger_body_of_a_key_that_may_not_save_is_discarded_and_the_connection_closed() {
        for headers in [
            &[("content-length", "120")][..],
            // A body of unknown length may be of any size.
            &[("transfer-encoding", "chunked")],
        ] {
            let permits = Semaphore::new(UPLOADS_AT_ONCE);
            let seen = Seen::default();
            let large = request(headers, 3, 40, &seen);
            let response = admit(&permits, large, refused(), &seen).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
            assert_eq!(response.headers()[header::CONNECTION], "close");
            assert!(seen.asked.load(Ordering::SeqCst));
            assert!(!seen.ran.load(Ordering::SeqCst));
            assert_eq!(seen.chunks_read.load(Ordering::SeqCst), 0, "answered first");
            // Drained after the answer, in the background.
            for _ in 0..100 {
                if seen.chunks_read.load(Ordering::SeqCst) == 3 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(seen.chunks_read.load(Ordering::SeqCst), 3, "drained");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn larger_bodies_wait_for_a_permit() {
        let permits = Arc::new(Semaphore::new(1));
        let held = permits.clone().acquire_owned().await.unwrap();
        let seen = Arc::new(Seen::default());
        let task = {
            let (permits, seen) = (permits.clone(), seen.clone());
            tokio::spawn(async move {
                let large = request(&[("content-length", "120")], 3, 40, &seen);
                admit(&permits, large, Ok(()), &seen).await.status()
            })
        };
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(seen.asked.load(Ordering::SeqCst));
        assert!(!seen.ran.load(Ordering::SeqCst), "ran without a permit");
        drop(held);
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
        assert!(seen.ran.load(Ordering::SeqCst));
        // Given back once the request is served.
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_larger_body_is_refused_once_the_permits_are_closed() {
        let permits = Semaphore::new(UPLOADS_AT_ONCE);
        permits.close();
        let seen = Seen::default();
        let large = request(&[("content-length", "101")], 1, 101, &seen);
        let response = admit(&permits, large, Ok(()), &seen).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!seen.ran.load(Ordering::SeqCst));
    }
}
