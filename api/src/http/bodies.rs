//! Small JSON bodies that several routes answer with.

use serde::Serialize;

/// `{"message": "..."}`: what a delete answers (the seed's `{"message": "Function deleted"}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    /// What was done, in a few words.
    #[schema(examples("Function deleted"))]
    pub message: &'static str,
}

impl Message {
    /// A message body saying `message`.
    pub fn new(message: &'static str) -> Self {
        Message { message }
    }
}
