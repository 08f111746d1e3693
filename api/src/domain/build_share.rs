//! Fair shares of dependency builds between namespaces: whether a namespace may queue one more
//! build now, given the builds it has under way and the build time it used in the last hour.
//! A build it may not queue is held (`pending`, unpublished) until one of its builds ends, so
//! that one namespace saving many functions cannot fill the single build queue ahead of
//! everyone else's builds.

/// `BUILD_NAMESPACE_CONCURRENCY` and `BUILD_NAMESPACE_SECONDS_PER_HOUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildShare {
    /// The most builds one namespace has queued or building at once (at least 1).
    pub concurrency: u32,
    /// The most build time (s) one namespace's builds may have used in the last hour before its
    /// next build is held; 0: no such quota.
    pub seconds_per_hour: u64,
}

impl Default for BuildShare {
    fn default() -> Self {
        BuildShare {
            concurrency: 2,
            seconds_per_hour: 3600,
        }
    }
}

/// What a namespace's builds use now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuildUsage {
    /// Its builds published and not ended (queued or building).
    pub in_flight: u64,
    /// Seconds its builds ran within the last hour (a running one counts until now).
    pub seconds_last_hour: u64,
}

/// Why a namespace's build is held rather than queued; its text is the held build's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    #[error(
        "waiting: this namespace has {limit} dependency builds queued or building (BUILD_NAMESPACE_CONCURRENCY); this one is queued when one of them ends"
    )]
    Concurrency { limit: u32 },
    #[error(
        "waiting: this namespace's builds ran {used} s in the last hour, over its quota of {limit} s (BUILD_NAMESPACE_SECONDS_PER_HOUR); this one is queued once the hour's use falls under it"
    )]
    Quota { used: u64, limit: u64 },
}

impl BuildShare {
    /// How many more builds a namespace using `usage` may queue now, or why none: the quota is
    /// checked before each build starts (a build under way is never stopped by it).
    pub fn room(&self, usage: BuildUsage) -> Result<u64, Held> {
        if self.seconds_per_hour > 0 && usage.seconds_last_hour >= self.seconds_per_hour {
            return Err(Held::Quota {
                used: usage.seconds_last_hour,
                limit: self.seconds_per_hour,
            });
        }
        let limit = u64::from(self.concurrency.max(1));
        match limit.saturating_sub(usage.in_flight) {
            0 => Err(Held::Concurrency {
                limit: self.concurrency.max(1),
            }),
            room => Ok(room),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(in_flight: u64, seconds_last_hour: u64) -> BuildUsage {
        BuildUsage {
            in_flight,
            seconds_last_hour,
        }
    }

    #[test]
    fn a_namespace_queues_up_to_its_concurrency() {
        let share = BuildShare {
            concurrency: 2,
            seconds_per_hour: 0,
        };
        assert_eq!(share.room(usage(0, 0)), Ok(2));
        assert_eq!(share.room(usage(1, 0)), Ok(1));
        assert_eq!(share.room(usage(2, 0)), Err(Held::Concurrency { limit: 2 }));
        // More under way than the limit (it was lowered): still none, never an underflow.
        assert_eq!(share.room(usage(5, 0)), Err(Held::Concurrency { limit: 2 }));
    }

    #[test]
    fn a_concurrency_of_zero_still_lets_one_build_run() {
        let share = BuildShare {
            concurrency: 0,
            seconds_per_hour: 0,
        };
        assert_eq!(share.room(usage(0, 0)), Ok(1));
        assert_eq!(share.room(usage(1, 0)), Err(Held::Concurrency { limit: 1 }));
    }

    #[test]
    fn the_hours_build_time_holds_the_next_build_unless_the_quota_is_off() {
        let share = BuildShare {
            concurrency: 4,
            seconds_per_hour: 600,
        };
        assert_eq!(share.room(usage(0, 599)), Ok(4));
        assert_eq!(
            share.room(usage(0, 600)),
            Err(Held::Quota {
                used: 600,
                limit: 600
            })
        );
        let unlimited = BuildShare {
            seconds_per_hour: 0,
            ..share
        };
        assert_eq!(unlimited.room(usage(1, 1_000_000)), Ok(3));
    }

    #[test]
    fn a_held_build_says_why_and_which_setting() {
        let why = Held::Concurrency { limit: 2 }.to_string();
        assert!(why.contains("2 dependency builds") && why.contains("BUILD_NAMESPACE_CONCURRENCY"));
        let why = Held::Quota {
            used: 700,
            limit: 600,
        }
        .to_string();
        assert!(why.contains("700 s") && why.contains("BUILD_NAMESPACE_SECONDS_PER_HOUR"));
    }
}
