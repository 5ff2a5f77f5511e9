//! The console's scripts and styles, compiled into the binary: nothing is fetched at build
//! or run time. Vendored from the npm registry (licenses beside them in `assets/vendor/`):
//! htmx 2.0.11 (BSD Zero-Clause), uPlot 1.6.32 (MIT). `console.css` and `console.js` are ours.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

use super::common::UiError;
use crate::api::ApiError;

/// `(name, content type, bytes)` of every file under `/ui/static/`.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot-1.6.32.min.css"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
];

/// `GET /ui/static/{name}`: cached for a day (no session needed: nothing here is secret).
#[get("/static/{name}")]
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, ty, bytes)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *ty))
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(*bytes),
        None => actix_web::ResponseError::error_response(&UiError::Api(ApiError::not_found(
            format!("no file {:?} under /ui/static/", name.as_str()),
        ))),
    }
}
