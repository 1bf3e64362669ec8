//! The last phase: each key's entries rendered into text, reusing the grants' proven texts.
use super::*;

/// Renders a key from its entries (a key only ever holds its own kind of entry), reusing the
/// texts the grants' decisions rendered.
pub(super) fn render_managed(
    section: Section,
    entries: &[Managed],
) -> Result<String, RenderMismatch> {
    if section == Section::MapAccounts {
        let accounts: Vec<String> = entries
            .iter()
            .filter_map(|m| match m.entry {
                Entry::Account(a) => Some(a.clone()),
                Entry::Mapping(_) => None,
            })
            .collect();
        return render_accounts(&accounts);
    }
    use std::sync::atomic::Ordering;
    // A grant's entry comes with its text and proof; an unowned entry kept is rendered here.
    let texts: Vec<Rendered> = entries
        .iter()
        .filter_map(|m| match m.entry {
            Entry::Mapping(mapping) => Some(match m.grant {
                Some(
                    c @ Candidate {
                        proof: Some(proof), ..
                    },
                ) => (c.text.as_str().into(), *proof, mapping, Some(c)),
                _ => {
                    let text = mapping_text(section, mapping);
                    let proof = TextProof::new(section, &text, mapping);
                    (text.into(), proof, mapping, None)
                }
            }),
            Entry::Account(_) => None,
        })
        .collect();
    // A grant's text proven in an earlier pass needs no look-up in the renderer's memo.
    let unproven: Vec<(TextProof, &str, &Arc<Mapping>)> = texts
        .iter()
        .filter(|(_, _, _, c)| !c.is_some_and(|c| c.proven.load(Ordering::Relaxed)))
        .map(|(t, p, m, _)| (*p, t.as_ref(), *m))
        .collect();
    prove_texts(section, &unproven)?;
    for (_, _, _, c) in &texts {
        if let Some(c) = c {
            c.proven.store(true, Ordering::Relaxed);
        }
    }
    // Sized exactly: at 5,000 grants the text is ~700 KB, and growing it by doubling would
    // leave up to as much again allocated (and copied) at the pass's peak.
    let mut out = String::with_capacity(texts.iter().map(|(t, _, _, _)| t.len()).sum());
    for (t, _, _, _) in &texts {
        out.push_str(t);
    }
    Ok(out)
}

/// An entry's text as [`render_managed`] writes it: the text, its proof, its mapping, and the
/// grant it comes from, if any.
pub(super) type Rendered<'a> = (
    std::borrow::Cow<'a, str>,
    TextProof,
    &'a Arc<Mapping>,
    Option<&'a Candidate>,
);

/// Managed entries go by principal key. Each key is in a key once (claims are unique; kept
/// entries are neither claimed nor repeated), so the order is total.
pub(super) fn by_principal(managed: &mut BTreeMap<Section, Vec<(&str, Managed)>>) {
    for entries in managed.values_mut() {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
}

/// The last phases: the removal breaker, then each key assembled (unowned entries in their order,
/// then managed entries by principal), and the plan.
pub(super) fn finish<'a>(
    at: &Inputs,
    now: &Current<'a>,
    mut fitted: Fitted<'a>,
    notes: Vec<String>,
) -> Result<Plan, RenderMismatch> {
    let (held, confirmed, removed) = if fitted.kept_now == now.managed.len() {
        (None, None, 0)
    } else {
        hold_removals(
            at.current,
            at.config,
            &at.owned_before,
            &now.managed,
            &mut fitted.managed,
        )
    };
    let Assembled {
        data,
        ownership,
        diff,
    } = assemble_keys(at, now, fitted.managed, &fitted.adopted)?;
    let annotations = at.current.and_then(|c| c.metadata.annotations.as_ref());
    let rails_changed = annotations.is_some_and(|a| a.contains_key(CONFIRM_ANNOTATION))
        || HeldRemoval::from_configmap(at.current) != held;
    let changed = match at.current {
        None => !data.is_empty() || held.is_some(),
        Some(_) => {
            &data != at.data
                || !ownership.same_keys(&at.owned_before)
                // A record in an older format is rewritten in the current one.
                || annotations
                    .and_then(|a| a.get(OWNERSHIP_ANNOTATION))
                    .is_some_and(|a| !ownership.is_written_as(a))
                || rails_changed
        }
    };
    // Every message was cut to MAX_MESSAGE_CHARS where it was made. Stable: two manifests of one
    // name (a render over files) keep the order the plan decided them in.
    let mut verdicts = fitted.verdicts;
    verdicts.sort_by(|a, b| a.grant.cmp(&b.grant));
    Ok(Plan {
        data,
        ownership,
        changed,
        verdicts,
        diff,
        findings: at.prepared.read.findings().cloned().collect(),
        notes,
        held,
        confirmed,
        removed,
        managed_before: now.managed.len(),
    })
}

/// The new `data`, the ownership record that goes with it and the entry-level diff.
struct Assembled {
    data: BTreeMap<String, String>,
    ownership: Ownership,
    diff: Vec<Change>,
}

/// Each key's new text, the ownership record and the diff. The other keys are carried over; a key
/// is copied only where it stays as it is (a copy of all of data up front would hold a second
/// ~700 KB text at the pass's peak).
fn assemble_keys(
    at: &Inputs,
    now: &Current,
    mut managed: BTreeMap<Section, Vec<(&str, Managed)>>,
    adopted: &KeyMap<Keyed, ()>,
) -> Result<Assembled, RenderMismatch> {
    let mut data: BTreeMap<String, String> = at
        .data
        .iter()
        .filter(|(k, _)| Section::from_key(k).is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keep = |data: &mut BTreeMap<String, String>, section: Section| {
        if let Some(v) = at.data.get(section.key()) {
            data.insert(section.key().to_string(), v.clone());
        }
    };
    let mut ownership = Ownership::default();
    let mut diff = Vec::new();
    let mut to_render: Vec<(Section, Vec<Managed>)> = Vec::new();
    for section in Section::ALL {
        if !at.prepared.read.readable(section) {
            if let Some(keys) = at.owned_before.keys.get(&section) {
                ownership.keys.insert(section, keys.clone());
            }
            keep(&mut data, section);
            continue;
        }
        let current = at
            .prepared
            .entries
            .get(&section)
            .map_or(&[][..], Vec::as_slice);
        let owned = now.is_managed.get(&section).map_or(&[][..], Vec::as_slice);
        let mine = managed.remove(&section).unwrap_or_default();
        let mut after: Vec<Managed> = current
            .iter()
            .zip(owned)
            .filter(|((_, _, k), owned)| !**owned && !adopted.contains_key(&k.borrowed()))
            .map(|((_, entry, _), _)| Managed {
                entry,
                grant: None,
                holder: None,
            })
            .collect();
        ownership.keys.insert(
            section,
            mine.iter()
                .map(|(k, m)| (k.to_string(), m.holder))
                .collect(),
        );
        after.extend(mine.into_iter().map(|(_, m)| m));
        let same = after.len() == current.len()
            && after.iter().zip(current).all(|(a, (_, e, _))| a.entry == e);
        if same {
            keep(&mut data, section);
            continue;
        }
        let before: Vec<&Entry> = current.iter().map(|(_, e, _)| e).collect();
        let after_entries: Vec<&Entry> = after.iter().map(|m| m.entry).collect();
        diff.extend(entry_diff(section, &before, &after_entries));
        if !after.is_empty() {
            to_render.push((section, after));
        }
    }
    // mapRoles and mapUsers each on a thread of their own when both are big (a first plan).
    let texts = parallel::each(&to_render, |(_, a)| a.len(), |(s, a)| render_managed(*s, a));
    for ((section, _), text) in to_render.iter().zip(texts) {
        data.insert(section.key().to_string(), text?);
    }
    Ok(Assembled {
        data,
        ownership,
        diff,
    })
}
