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
    /// The saved function's route would take requests a route of another namespace answers
    /// (a constraint SQL cannot state).
    #[error("route {0:?} would take requests of another namespace's route")]
    RouteOverlap(String),
    /// A namespace quota refuses what the statement would add (checked in its transaction).
    #[error(transparent)]
    Quota(#[from] crate::domain::quota::QuotaExceeded),
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
            DbError::Pool(_)
            | DbError::Inconsistent(_)
            | DbError::RouteOverlap(_)
            | DbError::Quota(_) => false,
        }
    }
}

#[cfg(test)]
impl DbError {
    /// The error Postgres answers a statement that breaks `violation` with, for the tests of
    /// what callers make of it. tokio_postgres makes such errors only from the server's
    /// messages, so a client reads it from a stream standing in for a server that refuses
    /// the connection with it.
    pub async fn violated(violation: Violation<'_>) -> DbError {
        use tokio::io::AsyncWriteExt as _;
        let (code, constraint) = match violation {
            Violation::Unique(constraint) => ("23505", constraint),
            Violation::ForeignKey(constraint) => ("23503", constraint),
        };
        // An ErrorResponse: 'E', its length, then fields (a type byte and a C string each).
        let mut fields = Vec::new();
        let named = constraint.map(|name| (b'n', name));
        for (kind, value) in [(b'S', "ERROR"), (b'C', code), (b'M', "violation")]
            .into_iter()
            .chain(named)
        {
            fields.push(kind);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut message = vec![b'E'];
        message.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
        message.extend(fields);
        let (client, mut server) = tokio::io::duplex(4096);
        server
            .write_all(&message)
            .await
            .expect("the stream takes it");
        let mut config = tokio_postgres::Config::new();
        config.user("test");
        let answer = config.connect_raw(client, tokio_postgres::NoTls).await;
        drop(server);
        match answer {
            Err(error) => DbError::Query(error),
            Ok(_) => panic!("the stand-in server refuses every connection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_made_violation_reads_as_the_one_postgres_would_send() {
        for violation in [
            Violation::Unique(Some("functions_route_key")),
            Violation::Unique(None),
            Violation::ForeignKey(Some("functions_namespace_fkey")),
        ] {
            let error = DbError::violated(violation).await;
            assert_eq!(error.violation(), Some(violation));
            assert_eq!(
                error.is_unique_violation(),
                matches!(violation, Violation::Unique(_))
            );
        }
        assert_eq!(DbError::Inconsistent("gone").violation(), None);
    }
}
