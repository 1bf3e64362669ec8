//! The removal breaker: removals held until a person confirms their token.
use super::*;

/// Managed entries a pass would remove but keeps, and why; `token` names exactly this set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldRemoval {
    pub token: String,
    pub count: usize,
    /// The principals whose entries are kept (ARNs or account ids), sorted; the first
    /// [`HELD_LISTED`] of them: the annotation must fit aws-auth's 256 KiB of annotations when
    /// thousands are held. `count` and `token` always stand for the whole set.
    pub principals: Vec<String>,
    pub reason: String,
    /// The step that lets this removal proceed (absent while grants are unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

impl HeldRemoval {
    /// The held removal recorded on aws-auth, if any.
    pub fn from_configmap(cm: Option<&ConfigMap>) -> Option<HeldRemoval> {
        let value = cm?.metadata.annotations.as_ref()?.get(HELD_ANNOTATION)?;
        serde_json::from_str(value).ok()
    }

    /// Principals for a message: the first few, and how many more.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 10;
        let mut s: Vec<String> = self
            .principals
            .iter()
            .take(SHOWN)
            .map(|p| shown(p).into_owned())
            .collect();
        if self.count > SHOWN {
            s.push(format!("and {} more", self.count - SHOWN));
        }
        s.join(", ")
    }
}

/// The confirmation token of a removal set: FNV-1a over the sorted entries, so the same set
/// always gets the same token and a different set a different one.
pub(super) fn removal_token(removed: &[(Section, &str)]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (section, key) in removed {
        for b in section
            .key()
            .bytes()
            .chain([b'/'])
            .chain(key.bytes())
            .chain([b'\n'])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The removal breaker. Managed entries present now and absent from the new plan are removals;
/// while the grants cannot be trusted, or when there are more than `max_removals` and more than
/// `max_removal_percent` of the managed entries, they are all put back (kept exactly as they are)
/// unless a person confirmed this very set's token. Returns the held removal, the confirmed one,
/// and how many managed entries the plan removes.
pub(super) fn hold_removals<'a>(
    current: Option<&ConfigMap>,
    config: &PlanConfig,
    owned_before: &Ownership,
    managed_now: &KeyMap<(Section, Keyed<'a>), &'a Entry>,
    managed: &mut BTreeMap<Section, Vec<(&'a str, Managed<'a>)>>,
) -> (Option<HeldRemoval>, Option<HeldRemoval>, usize) {
    let has = |s: &Section, k: &str| {
        managed
            .get(s)
            .is_some_and(|m| m.binary_search_by(|(x, _)| (*x).cmp(k)).is_ok())
    };
    let mut removed: Vec<(Section, &str)> = managed_now
        .keys()
        .filter(|(s, k)| !has(s, k.as_str()))
        .map(|(s, k)| (*s, k.as_str()))
        .collect();
    if removed.is_empty() {
        return (None, None, 0);
    }
    removed.sort();
    let token = removal_token(&removed);
    let count = removed.len();
    let mut principals: Vec<String> = removed
        .iter()
        .map(|&(s, k)| match managed_now[&(s, Keyed::lookup(k))] {
            Entry::Mapping(m) => m.arn.clone(),
            Entry::Account(a) => a.clone(),
        })
        .collect();
    principals.sort();
    principals.truncate(HELD_LISTED);
    let Some((reason, confirmable)) = trips(config, count, managed_now.len()) else {
        return (None, None, count);
    };
    let confirm = confirmable.then(|| format!("aws-auth-operator confirm-removal {token}"));
    let removal = HeldRemoval {
        token: token.clone(),
        count,
        principals,
        reason,
        confirm,
    };
    let confirmed = current
        .and_then(|c| c.metadata.annotations.as_ref())
        .and_then(|a| a.get(CONFIRM_ANNOTATION))
        .is_some_and(|t| t.trim() == token);
    if confirmable && confirmed {
        return (None, Some(removal), count);
    }
    for key in removed {
        let entry = managed_now[&(key.0, Keyed::lookup(key.1))];
        let holder = owned_before.holder(key.0, key.1);
        managed.entry(key.0).or_default().push((
            key.1,
            Managed {
                entry,
                grant: None,
                holder,
            },
        ));
    }
    by_principal(managed);
    (Some(removal), None, 0)
}

/// Whether removing `count` of the `managed` entries trips the breaker, and why; with whether a
/// person may confirm it (not while the grants are unavailable). Earlier passes' removals count
/// as part of this one, against the most entries there were within the window (entries added to
/// dilute the share count, but never shrink it).
fn trips(config: &PlanConfig, count: usize, managed: usize) -> Option<(String, bool)> {
    if let Some(why) = &config.grants_unavailable {
        let reason = format!("{why}: no managed entry is removed until the grants are back");
        return Some((reason, false));
    }
    let recent = config.recently_removed;
    let total = count + recent;
    let base = (managed + recent).max(config.peak_managed);
    let percent = total * 100 / base.max(1);
    // One removal alone is never a share: deleting the last of three grants proceeds.
    let share = total > 1 && total * 100 > base * config.max_removal_percent as usize;
    if total <= config.max_removals && !share {
        return None;
    }
    let earlier = if recent > 0 {
        format!(" (with {recent} removed in the last passes)")
    } else {
        String::new()
    };
    let limit = if total > config.max_removals {
        format!("--max-removals {}", config.max_removals)
    } else {
        format!("--max-removal-percent {}", config.max_removal_percent)
    };
    let reason = format!(
        "this would remove {total} of {base} managed entries{earlier} ({percent}%), more than {limit}"
    );
    Some((reason, true))
}

/// Principals a held removal lists by name.
pub const HELD_LISTED: usize = 100;
