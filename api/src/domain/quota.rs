//! Per-namespace quotas (DESIGN §19): what one tenant may hold. Each namespace may set its own
//! (`None`: the platform's default, a setting); a refusal names the quota, its limit and what
//! is in use. Pure: the store counts, this decides and words it.

use serde::{Deserialize, Serialize};

/// What a quota bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Functions in the namespace.
    Functions,
    /// Live keys (not revoked, not expired) of the namespace.
    Keys,
    /// Async invocations waiting or running (narrows `MAX_PENDING_ASYNC`).
    PendingAsync,
    /// Bytes of the distinct stored artifacts (packages, dependency builds) its functions name.
    ArtifactBytes,
    /// Bytes of results and logs stored in its async invocations still kept.
    ResultBytes,
}

impl Quota {
    pub const ALL: [Quota; 5] = [
        Quota::Functions,
        Quota::Keys,
        Quota::PendingAsync,
        Quota::ArtifactBytes,
        Quota::ResultBytes,
    ];

    /// Its name in `quotas` and in the error code (`quota_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Quota::Functions => "functions",
            Quota::Keys => "keys",
            Quota::PendingAsync => "pending_async",
            Quota::ArtifactBytes => "artifact_bytes",
            Quota::ResultBytes => "result_bytes",
        }
    }

    /// Bytes (413 when over) rather than a count (429).
    pub fn is_bytes(self) -> bool {
        matches!(self, Quota::ArtifactBytes | Quota::ResultBytes)
    }

    fn unit(self) -> &'static str {
        match self {
            Quota::Functions => "functions",
            Quota::Keys => "live keys",
            Quota::PendingAsync => {
                "async invocations waiting or running (the limit is at most MAX_PENDING_ASYNC)"
            }
            Quota::ArtifactBytes => "bytes of stored artifacts",
            Quota::ResultBytes => "bytes of stored async results and logs",
        }
    }
}

/// The largest quota a client may set: 2^53, the largest integer every JSON reader keeps.
pub const MAX_QUOTA: i64 = 1 << 53;

/// A namespace's quotas as set: `None` is the platform's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"functions": 50, "keys": null, "pending_async": 1000,
    "artifact_bytes": 1073741824, "result_bytes": null})))]
pub struct Quotas {
    /// Functions in the namespace.
    pub functions: Option<i64>,
    /// Live (not revoked, not expired) keys of the namespace.
    pub keys: Option<i64>,
    /// Async invocations waiting or running; never more than `MAX_PENDING_ASYNC`.
    pub pending_async: Option<i64>,
    /// Bytes of the distinct stored packages and dependency builds its functions name.
    pub artifact_bytes: Option<i64>,
    /// Bytes of results and logs stored in its async invocations (kept
    /// `RECORD_RETENTION_DAYS`).
    pub result_bytes: Option<i64>,
}

impl Quotas {
    pub fn get(&self, quota: Quota) -> Option<i64> {
        match quota {
            Quota::Functions => self.functions,
            Quota::Keys => self.keys,
            Quota::PendingAsync => self.pending_async,
            Quota::ArtifactBytes => self.artifact_bytes,
            Quota::ResultBytes => self.result_bytes,
        }
    }

    fn slot(&mut self, quota: Quota) -> &mut Option<i64> {
        match quota {
            Quota::Functions => &mut self.functions,
            Quota::Keys => &mut self.keys,
            Quota::PendingAsync => &mut self.pending_async,
            Quota::ArtifactBytes => &mut self.artifact_bytes,
            Quota::ResultBytes => &mut self.result_bytes,
        }
    }

    /// These quotas with `patch` merged in (JSON merge semantics).
    pub fn merged(mut self, patch: &QuotasPatch) -> Quotas {
        for quota in Quota::ALL {
            if let Some(value) = patch.get(quota) {
                *self.slot(quota) = value;
            }
        }
        self
    }

    /// The first quota outside 0..=[`MAX_QUOTA`], as a sentence.
    pub fn check(&self) -> Result<(), String> {
        for quota in Quota::ALL {
            if let Some(value) = self.get(quota)
                && !(0..=MAX_QUOTA).contains(&value)
            {
                return Err(format!(
                    "quotas.{} must be from 0 to {MAX_QUOTA}, or null for the platform's default; got {value}",
                    quota.name()
                ));
            }
        }
        Ok(())
    }

    /// The limits in force: each set one, else the platform's `defaults`; `pending_async` never
    /// above the platform's (`MAX_PENDING_ASYNC`).
    pub fn in_force(&self, defaults: &QuotaDefaults) -> Limits {
        Limits {
            functions: self.functions.unwrap_or(defaults.functions),
            keys: self.keys.unwrap_or(defaults.keys),
            pending_async: self.pending_async.map_or(defaults.pending_async, |own| {
                own.min(defaults.pending_async)
            }),
            artifact_bytes: self.artifact_bytes.unwrap_or(defaults.artifact_bytes),
            result_bytes: self.result_bytes.unwrap_or(defaults.result_bytes),
        }
    }
}

/// The platform's quotas (settings), for a namespace that sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub functions: i64,
    pub keys: i64,
    /// `MAX_PENDING_ASYNC`: also the most any namespace may set.
    pub pending_async: i64,
    pub artifact_bytes: i64,
    pub result_bytes: i64,
}

/// The limits in force for a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub functions: i64,
    pub keys: i64,
    pub pending_async: i64,
    pub artifact_bytes: i64,
    pub result_bytes: i64,
}

/// A change of quotas: an absent field is unchanged, `null` goes back to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"functions": 10, "result_bytes": null})))]
pub struct QuotasPatch {
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740992_i64)]
    pub functions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740992_i64)]
    pub keys: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740992_i64)]
    pub pending_async: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740992_i64)]
    pub artifact_bytes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740992_i64)]
    pub result_bytes: Option<Option<i64>>,
}

impl QuotasPatch {
    /// What the patch says of `quota`: `None` unchanged, `Some(None)` back to the default.
    pub fn get(&self, quota: Quota) -> Option<Option<i64>> {
        match quota {
            Quota::Functions => self.functions,
            Quota::Keys => self.keys,
            Quota::PendingAsync => self.pending_async,
            Quota::ArtifactBytes => self.artifact_bytes,
            Quota::ResultBytes => self.result_bytes,
        }
    }
}

/// A present field (with `#[serde(default)]` for an absent one): a whole number or null.
fn set_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<i64>>, D::Error> {
    crate::domain::wire::optional_whole_number(deserializer).map(Some)
}

/// A quota that refuses: `used` is in use of `limit`, and the change would add `adding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "namespace quota {} exceeded: {used} {} in use{}, limit {limit}; an admin sets it with PATCH /namespaces/{{name}}",
    .quota.name(), .quota.unit(), adding_text(*.adding)
)]
pub struct QuotaExceeded {
    pub quota: Quota,
    pub limit: i64,
    pub used: i64,
    pub adding: i64,
}

fn adding_text(adding: i64) -> String {
    if adding > 1 {
        format!(" and this would add {adding}")
    } else {
        String::new()
    }
}

/// Refuses when `used + adding` would pass `limit` (a change that adds nothing always passes,
/// so a namespace over a lowered quota may still shrink).
pub fn check(quota: Quota, limit: i64, used: i64, adding: i64) -> Result<(), QuotaExceeded> {
    if adding > 0 && used.checked_add(adding).is_none_or(|total| total > limit) {
        return Err(QuotaExceeded {
            quota,
            limit,
            used,
            adding,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_maximum_is_max_quota() {
        assert_eq!(MAX_QUOTA, 9_007_199_254_740_992);
    }

    const DEFAULTS: QuotaDefaults = QuotaDefaults {
        functions: 1000,
        keys: 100,
        pending_async: 10_000,
        artifact_bytes: 10,
        result_bytes: 20,
    };

    #[test]
    fn a_quota_refuses_only_what_would_pass_it_and_says_what_is_in_use() {
        assert_eq!(check(Quota::Functions, 3, 2, 1), Ok(()));
        let refused = check(Quota::Functions, 3, 3, 1).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "namespace quota functions exceeded: 3 functions in use, limit 3; an admin sets it with PATCH /namespaces/{name}"
        );
        let bytes = check(Quota::ArtifactBytes, 100, 60, 50).unwrap_err();
        assert!(
            bytes
                .to_string()
                .contains("60 bytes of stored artifacts in use and this would add 50, limit 100"),
            "{bytes}"
        );
        // Over a lowered quota, what adds nothing passes; a zero quota refuses the first one.
        assert_eq!(check(Quota::ArtifactBytes, 10, 60, 0), Ok(()));
        assert_eq!(check(Quota::ArtifactBytes, 10, 60, -5), Ok(()));
        assert!(check(Quota::Keys, 0, 0, 1).is_err());
        assert!(check(Quota::ResultBytes, i64::MAX, i64::MAX, 1).is_err());
        assert!(Quota::ArtifactBytes.is_bytes() && !Quota::PendingAsync.is_bytes());
    }

    #[test]
    fn a_patch_merges_absent_unchanged_null_default_and_values_set() {
        let set = Quotas {
            functions: Some(5),
            keys: Some(7),
            ..Quotas::default()
        };
        let patch: QuotasPatch =
            serde_json::from_str(r#"{"functions": null, "pending_async": 3.0}"#).unwrap();
        let merged = set.merged(&patch);
        assert_eq!(
            merged,
            Quotas {
                functions: None,
                keys: Some(7),
                pending_async: Some(3),
                ..Quotas::default()
            }
        );
        assert!(serde_json::from_str::<QuotasPatch>(r#"{"function": 1}"#).is_err());
        assert!(serde_json::from_str::<QuotasPatch>(r#"{"keys": 1.5}"#).is_err());
        assert!(serde_json::from_str::<QuotasPatch>(r#"{"keys": "1"}"#).is_err());
    }

    #[test]
    fn limits_in_force_fall_back_to_the_defaults_and_pending_never_passes_the_platforms() {
        let own = Quotas {
            functions: Some(0),
            pending_async: Some(50_000),
            result_bytes: Some(5),
            ..Quotas::default()
        };
        assert_eq!(
            own.in_force(&DEFAULTS),
            Limits {
                functions: 0,
                keys: 100,
                pending_async: 10_000,
                artifact_bytes: 10,
                result_bytes: 5,
            }
        );
        let narrow = Quotas {
            pending_async: Some(2),
            ..Quotas::default()
        };
        assert_eq!(narrow.in_force(&DEFAULTS).pending_async, 2);
        assert!(own.check().is_ok());
        let bad = Quotas {
            keys: Some(-1),
            ..Quotas::default()
        };
        assert_eq!(
            bad.check().unwrap_err(),
            format!(
                "quotas.keys must be from 0 to {MAX_QUOTA}, or null for the platform's default; got -1"
            )
        );
    }
}
