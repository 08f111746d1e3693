//! The store's own error: what Postgres or the pool said, never an HTTP status. Callers map
//! a constraint's violation to what it means for them ([`DbError::violation`]).

/// A database failure, whatever layer it came from.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    /// Rows were not as a statement before left them (a race the caller may retry).
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// A constraint a statement broke, by kind and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation<'a> {
    Unique(Option<&'a str>),
    ForeignKey(Option<&'a str>),
}

impl DbError {
    /// The unique or foreign-key constraint the statement broke, if that is what failed.
    pub fn violation(&self) -> Option<Violation<'_>> {
        let DbError::Query(error) = self else {
            return None;
        };
        let db = error.as_db_error()?;
        match *db.code() {
            tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                Some(Violation::Unique(db.constraint()))
            }
            tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                Some(Violation::ForeignKey(db.constraint()))
            }
            _ => None,
        }
    }

    /// True for a unique constraint's violation: the row is there already.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Query(error) => error
                .as_db_error()
                .is_some_and(|db| *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            DbError::Pool(_) | DbError::Inconsistent(_) => false,
        }
    }
}
