//! Phase 4: the size budget. aws-auth's data (1 MiB less a margin) and its annotations (the
//! ownership record's share of 256 KiB) must hold what the plan writes; entries that must stay
//! are counted first, then the accepted grants oldest first, and whatever does not fit is refused,
//! deterministically.
use super::*;

/// The entries the plan writes, by key, and what it took over.
pub(super) struct Fitted<'a> {
    pub(super) verdicts: Vec<Verdict>,
    pub(super) managed: BTreeMap<Section, Vec<(&'a str, Managed<'a>)>>,
    /// Unowned entries an `adopt: true` grant takes over.
    pub(super) adopted: KeyMap<Keyed<'a>, ()>,
    /// Managed entries of now that the plan keeps, each counted once: when that is all of them,
    /// nothing is removed and the breaker has nothing to look at.
    pub(super) kept_now: usize,
}

/// The running totals against the two budgets.
struct Sizes<'a> {
    data: usize,
    annotations: usize,
    annotation_budget: usize,
    /// Key prefixes the ownership record holds already (each is written once).
    prefixes: KeyMap<Keyed<'a>, ()>,
}

pub(super) fn fit<'a>(at: &Inputs<'a>, now: &Current<'a>, claims: Claims<'a>) -> Fitted<'a> {
    let mut sizes = Sizes {
        data: fixed_bytes(at, now),
        annotations: OWNERSHIP_ANNOTATION.len() + 16,
        annotation_budget: annotation_budget(at),
        prefixes: KeyMap::default(),
    };
    let mut fitted = Fitted {
        verdicts: claims.verdicts,
        managed: BTreeMap::new(),
        adopted: KeyMap::default(),
        kept_now: 0,
    };
    keep_waiting(
        at,
        now,
        &claims.claimed,
        claims.invalid_kept,
        claims.waiting,
        &mut sizes,
        &mut fitted,
    );
    for a in claims.accepted {
        let c = a.candidate;
        let adopting = now.unowned.contains_key(&c.key.borrowed());
        // An adopted entry replaces one already counted in the fixed bytes.
        let size = if adopting { 0 } else { c.text.len() };
        let (ann, prefix) = record_cost(&c.key.key, Some(c.prefix), &sizes.prefixes);
        if let Some(why) = too_large(at.config, &sizes, c, size, ann) {
            let message =
                format!("{why}: remove unused grants, or grant roles that many people assume");
            fitted.verdicts.push(claims::candidate_verdict(
                a.name,
                c,
                Reason::TooLarge,
                &message,
            ));
            continue;
        }
        sizes.data += size;
        sizes.annotations += ann;
        sizes.prefixes.extend(prefix.map(|p| (p, ())));
        if adopting {
            fitted.adopted.insert(c.key.borrowed(), ());
        }
        fitted.verdicts.push(Verdict {
            grant: a.name.clone(),
            reason: Reason::Applied,
            message: c.applied.clone(),
            section: Some(c.section),
            canonical_arn: Some(c.canonical.clone()),
        });
        fitted.managed.entry(c.section).or_default().push((
            &c.key.key,
            Managed {
                entry: &c.entry,
                grant: Some(c),
                holder: Some(a.holder),
            },
        ));
        fitted.kept_now += usize::from(a.in_aws_auth);
    }
    by_principal(&mut fitted.managed);
    fitted
}

/// The bytes of data the plan does not decide: keys other than the three, and the unowned
/// entries of the readable ones (an unreadable key counts whole).
fn fixed_bytes(at: &Inputs, now: &Current) -> usize {
    let other_keys: usize = at
        .data
        .iter()
        .filter(|(k, _)| Section::from_key(k).is_none())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let sections: usize = Section::ALL
        .iter()
        .map(|&s| match at.prepared.entries.get(&s) {
            Some(entries) => entries
                .iter()
                .filter(|(_, _, k)| now.unowned.contains_key(&k.borrowed()))
                .map(|(_, e, _)| entry_len(s, e))
                .sum(),
            None => at.data.get(s.key()).map_or(0, String::len),
        })
        .sum();
    other_keys + sections
}

/// What the ownership record may take: it shares the annotation limit with whatever else
/// aws-auth carries.
fn annotation_budget(at: &Inputs) -> usize {
    let ours = [
        OWNERSHIP_ANNOTATION,
        HELD_ANNOTATION,
        CONFIRM_ANNOTATION,
        CONFIRMED_BY_ANNOTATION,
        WINDOW_ANNOTATION,
    ];
    let other_annotations: usize = at
        .current
        .and_then(|c| c.metadata.annotations.as_ref())
        .map(|a| {
            a.iter()
                .filter(|(k, _)| !ours.contains(&k.as_str()))
                .map(|(k, v)| k.len() + v.len())
                .sum()
        })
        .unwrap_or(0);
    at.config
        .max_annotation_bytes
        .saturating_sub(other_annotations)
}

/// Entries that stay whatever the budget says: invalid grants' last applied entries (not claimed
/// by another grant meanwhile) and those of grants that wait, each with its holder as recorded.
fn keep_waiting<'a>(
    at: &Inputs,
    now: &Current<'a>,
    claimed: &KeyMap<Keyed<'a>, &Arc<str>>,
    invalid_kept: Vec<(Section, Keyed<'a>, Holder)>,
    waiting: Vec<(Section, Keyed<'a>)>,
    sizes: &mut Sizes<'a>,
    fitted: &mut Fitted<'a>,
) {
    let invalid_kept = invalid_kept
        .into_iter()
        .filter(|(_, key, _)| !claimed.contains_key(key))
        .map(|(section, key, holder)| (section, key, Some(holder)));
    let waiting = waiting
        .into_iter()
        .map(|(section, key)| (section, key, at.owned_before.holder(section, key.as_str())));
    // Two invalid grants can keep the same entry.
    let mut kept: KeyMap<(Section, Keyed), ()> = KeyMap::default();
    for (section, key, holder) in invalid_kept.chain(waiting) {
        if let Some((&(_, key), &entry)) = now.managed.get_key_value(&(section, key))
            && kept.insert((section, key), ()).is_none()
        {
            sizes.data += entry_len(section, entry);
            let (cost, prefix) = record_cost(key.as_str(), None, &sizes.prefixes);
            sizes.annotations += cost;
            sizes.prefixes.extend(prefix.map(|p| (p, ())));
            fitted.managed.entry(section).or_default().push((
                key.as_str(),
                Managed {
                    entry,
                    grant: None,
                    holder,
                },
            ));
            fitted.kept_now += 1;
        }
    }
}

/// Why a candidate of `size` data bytes and `ann` record bytes does not fit, if it does not.
fn too_large(
    config: &PlanConfig,
    sizes: &Sizes,
    c: &Candidate,
    size: usize,
    ann: usize,
) -> Option<String> {
    if sizes.data + size > config.max_data_bytes {
        Some(format!(
            "adding {} ({size} bytes) would take aws-auth's data to {} bytes, past its budget of {} (a ConfigMap holds 1 MiB; the budget keeps a {} KiB margin); {} bytes are left",
            c.canonical,
            sizes.data + size,
            config.max_data_bytes,
            DATA_MARGIN / 1024,
            config.max_data_bytes.saturating_sub(sizes.data)
        ))
    } else if sizes.annotations + ann > sizes.annotation_budget {
        Some(format!(
            "adding {} would take the ownership record ({OWNERSHIP_ANNOTATION}) to {} bytes, past the {} bytes the other annotations leave of their 256 KiB limit; {} bytes are left",
            c.canonical,
            sizes.annotations + ann,
            sizes.annotation_budget,
            sizes.annotation_budget.saturating_sub(sizes.annotations)
        ))
    } else {
        None
    }
}
