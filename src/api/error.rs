//! API errors: every failure is `{"error": "..."}` with the status that says whose fault it was
//! (400 bad input, 401 no cookie, 404 unknown, 409 conflict, 413 too large, 503 not now).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use gossipcoin_proto::Txid;

use crate::node::ControlError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The transaction the error is about, when there is one (a payment already known).
    pub txid: Option<Txid>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            txid: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
            ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::AlreadyKnown { txid } => {
                return Self {
                    status: StatusCode::CONFLICT,
                    message: e.to_string(),
                    txid: Some(*txid),
                };
            }
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.txid {
            Some(txid) => json!({ "error": self.message, "txid": txid.to_string() }),
            None => json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

/// A body extractor's refusal (malformed JSON, wrong content type, too large) as a JSON error.
pub fn rejection(status: StatusCode, text: String) -> ApiError {
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST // a JSON body of the wrong shape is bad input too
    } else {
        status
    };
    ApiError::new(status, text)
}

pub type ApiResult<T> = Result<T, ApiError>;
