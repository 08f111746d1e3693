//! The vocabularies of async invocations as types: where one stands ([`AsyncStatus`], the
//! `status` column of `async_invocations`), what a client is shown of any invocation
//! ([`InvocationStatus`]), and how it was made ([`Mode`]).
//!
//! Each is stored as text and sent as JSON in exactly the spelling of [`as_str`](Mode::as_str),
//! which is the spelling the columns, their `CHECK`s and the API documentation use. Pure: no
//! database, route or state type is needed to use them.

use serde::{Deserialize, Serialize};
use std::error::Error;
use std::fmt;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// Implements `as_str`, `parse`, `Display` and text `ToSql`/`FromSql` for an enum whose
/// variants each have one spelling.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and sent spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value spelled `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut tokio_util::bytes::BytesMut,
            ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                let text = <&str as FromSql>::from_sql(ty, raw)?;
                $name::parse(text).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), text).into()
                })
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

/// Where an async invocation stands: the `status` column of `async_invocations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsyncStatus {
    /// Stored, its job not yet confirmed by the broker (shown as `queued`).
    Accepting,
    /// Its next attempt's job is published (now or in a delay queue).
    Queued,
    /// An attempt is claimed by a dispatcher.
    Running,
    Succeeded,
    /// No more attempts: it waits for a redrive.
    DeadLettered,
}

text_enum!(AsyncStatus {
    Accepting => "accepting",
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    DeadLettered => "dead_lettered",
});

impl AsyncStatus {
    /// The status a client sees: `accepting` is an implementation detail of `queued`.
    pub const fn public(self) -> InvocationStatus {
        match self {
            AsyncStatus::Accepting | AsyncStatus::Queued => InvocationStatus::Queued,
            AsyncStatus::Running => InvocationStatus::Running,
            AsyncStatus::Succeeded => InvocationStatus::Succeeded,
            AsyncStatus::DeadLettered => InvocationStatus::DeadLettered,
        }
    }

    /// Whether nothing more happens to the invocation (until a redrive).
    pub const fn is_final(self) -> bool {
        matches!(self, AsyncStatus::Succeeded | AsyncStatus::DeadLettered)
    }
}

/// The status of any invocation, sync or async, as `GET /invocations/` shows it. An async
/// invocation ends `succeeded` or `dead_lettered`; `failed`, `timeout` and `expired` are the
/// endings of sync calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Timeout,
    DeadLettered,
    Expired,
}

text_enum!(InvocationStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Timeout => "timeout",
    DeadLettered => "dead_lettered",
    Expired => "expired",
});

/// How an invocation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `/execute` or an HTTP route: never stored in `async_invocations`.
    Sync,
    /// `/execute_async`, or a destination.
    Async,
    /// A schedule's tick.
    Schedule,
}

text_enum!(Mode {
    Sync => "sync",
    Async => "async",
    Schedule => "schedule",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + Serialize + for<'de> Deserialize<'de>,
    {
        for &value in all {
            let text = value.to_string();
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{text}\""), "JSON spells it as stored");
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
        }
    }

    #[test]
    fn every_value_is_spelled_as_the_columns_and_the_documentation_spell_it() {
        let spelled = |all: &[AsyncStatus]| all.iter().map(|s| s.as_str()).collect::<Vec<_>>();
        assert_eq!(
            spelled(AsyncStatus::ALL),
            [
                "accepting",
                "queued",
                "running",
                "succeeded",
                "dead_lettered"
            ]
        );
        assert_eq!(
            InvocationStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            [
                "queued",
                "running",
                "succeeded",
                "failed",
                "timeout",
                "dead_lettered",
                "expired"
            ]
        );
        assert_eq!(
            Mode::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            ["sync", "async", "schedule"]
        );
        round_trips(AsyncStatus::ALL);
        round_trips(InvocationStatus::ALL);
        round_trips(Mode::ALL);
        for &status in AsyncStatus::ALL {
            assert_eq!(AsyncStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(Mode::parse("Async"), None, "spellings are exact");
        assert_eq!(InvocationStatus::parse("accepting"), None);
    }

    #[test]
    fn a_client_sees_accepting_as_queued() {
        assert_eq!(AsyncStatus::Accepting.public(), InvocationStatus::Queued);
        for &status in &AsyncStatus::ALL[1..] {
            assert_eq!(status.public().as_str(), status.as_str());
        }
        assert!(AsyncStatus::Succeeded.is_final() && AsyncStatus::DeadLettered.is_final());
        assert!(!AsyncStatus::Queued.is_final());
    }

    #[test]
    fn a_value_goes_to_a_text_column_and_back_as_its_spelling() {
        let mut out = tokio_util::bytes::BytesMut::new();
        AsyncStatus::DeadLettered
            .to_sql_checked(&Type::TEXT, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"dead_lettered");
        assert_eq!(
            AsyncStatus::from_sql(&Type::TEXT, b"dead_lettered").unwrap(),
            AsyncStatus::DeadLettered
        );
        assert_eq!(
            Mode::from_sql(&Type::VARCHAR, b"schedule").unwrap(),
            Mode::Schedule
        );
        assert!(Mode::from_sql(&Type::TEXT, b"cron").is_err());
        assert!(<Mode as ToSql>::accepts(&Type::TEXT));
        assert!(!<Mode as ToSql>::accepts(&Type::INT4));
    }
}
