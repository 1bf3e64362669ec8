//! What a grant decides on its own: validity, the cluster creator, the privileged policy; and
//! the messages of refusals.
use super::*;

/// What a grant decides on its own (its spec, its status, the configured rails), before other
/// grants and aws-auth are looked at. Kept per grant between plans (see [`memo`]).
pub(super) struct Own {
    /// The grant's name (part of what the decision is kept by).
    pub(super) name: Arc<str>,
    pub(super) decision: Decision,
    /// Whether the decision read the grant's status (an invalid grant's last applied entry).
    pub(super) read_status: bool,
}

pub(super) enum Decision {
    Refused(Refusal),
    Candidate(Candidate),
}

pub(super) struct Refusal {
    pub(super) reason: Reason,
    pub(super) message: Arc<str>,
    pub(super) section: Option<Section>,
    pub(super) canonical_arn: Option<Arc<str>>,
    /// An invalid grant's last applied entry (key, principal key, principal), which stays
    /// when the ownership record names the grant its holder.
    pub(super) keep: Option<(Section, OwnedKey, Arc<str>)>,
}

pub(super) struct Candidate {
    pub(super) section: Section,
    /// The principal's key with its hash (the plan's maps are keyed by it).
    pub(super) key: OwnedKey,
    pub(super) entry: Entry,
    /// The key's part the ownership record shares (see [`split_key`]): its length and hash.
    pub(super) prefix: (usize, u64),
    pub(super) canonical: Arc<str>,
    /// The entry as the renderer writes it (its length is the size budget's unit).
    pub(super) text: String,
    /// What proving `text` reads back as the entry needs (`None` for an account).
    pub(super) proof: Option<TextProof>,
    /// Set once `text` has been proven to read back as the entry (see [`render_managed`]).
    pub(super) proven: std::sync::atomic::AtomicBool,
    /// The Applied verdict's message.
    pub(super) applied: Arc<str>,
}

/// The checks that read nothing but the grant and the configuration, in the order the plan
/// makes them.
pub(super) fn decide_own(g: &impl GrantRef, config: &PlanConfig) -> Own {
    let decision = decide(g, config, true);
    Own {
        name: g.name().into(),
        read_status: matches!(&decision, Decision::Refused(r) if r.reason == Reason::Invalid),
        decision,
    }
}

/// `for_aws_auth`: whether aws-auth's own needs apply (a username), or only what every backend
/// shares.
pub(super) fn decide(g: &impl GrantRef, config: &PlanConfig, for_aws_auth: bool) -> Decision {
    let refused = |reason, message: String, v: Option<&ValidGrant>| {
        Decision::Refused(Refusal {
            reason,
            message: excerpt(&message, MAX_MESSAGE_CHARS).into(),
            section: v.map(|v| v.section),
            canonical_arn: v.map(|v| v.canonical.as_str().into()),
            keep: None,
        })
    };
    let validated = validate(g.spec());
    // The creator in any form (a session ARN, a path) is named as such before anything else, so
    // no message ever suggests the ARN that would be refused next. An ARN that validated as
    // written has the principal key validation worked out.
    if let Some(raw) = g.spec().arn.as_deref().map(str::trim)
        && !config.cluster_creators.is_empty()
        && match &validated {
            Ok(v) if v.canonical == raw => config.cluster_creators.contains(&v.key),
            _ => arn::principal_key(raw).is_ok_and(|k| config.cluster_creators.contains(&k)),
        }
    {
        return refused(Reason::ClusterCreator, cluster_creator_message(raw), None);
    }
    let v = match validated {
        Ok(v) => v,
        Err(invalid) => {
            // The kept entry's key and principal go into the status, so that the next pass
            // (after the status says Invalid) still knows which entry it is; the plan keeps it
            // only where the ownership record names this grant its holder.
            return Decision::Refused(Refusal {
                reason: Reason::Invalid,
                message: excerpt(&invalid.to_string(), MAX_MESSAGE_CHARS - KEPT.len()).into(),
                section: None,
                canonical_arn: None,
                keep: last_applied(g.reported())
                    .map(|(s, key, arn)| (s, OwnedKey::new(key), Arc::from(arn))),
            });
        }
    };
    if v.section != Section::MapAccounts && config.cluster_creators.contains(&v.key) {
        return refused(
            Reason::ClusterCreator,
            cluster_creator_message(&v.canonical),
            Some(&v),
        );
    }
    if let Some(message) = policy::forbidden(&v.entry, &v.canonical, config) {
        return refused(Reason::Forbidden, message, Some(&v));
    }
    // Valid for access entries, which generate a username; aws-auth needs one. Like any invalid
    // grant, it keeps the entry it last applied.
    if for_aws_auth && matches!(&v.entry, Entry::Mapping(m) if m.username.is_empty()) {
        return Decision::Refused(Refusal {
            reason: Reason::Invalid,
            message: crate::engine::rules::USERNAME_FOR_AWS_AUTH.into(),
            section: Some(v.section),
            canonical_arn: Some(v.canonical.as_str().into()),
            keep: last_applied(g.reported())
                .map(|(s, key, arn)| (s, OwnedKey::new(key), Arc::from(arn))),
        });
    }
    let ValidGrant {
        section,
        key,
        canonical,
        entry,
    } = v;
    let (text, proof) = match &entry {
        Entry::Mapping(m) => {
            let text = mapping_text(section, m);
            let proof = TextProof::new(section, &text, m);
            (text, Some(proof))
        }
        Entry::Account(a) => (account_text(a), None),
    };
    debug_assert_eq!(text.len(), entry_len(section, &entry));
    let prefix = split_key(&key).0;
    Decision::Candidate(Candidate {
        applied: excerpt(&describe(section, &entry), MAX_MESSAGE_CHARS).into(),
        prefix: (prefix.len(), Keyed::lookup(prefix).hash),
        key: OwnedKey::new(key),
        canonical: canonical.into(),
        text,
        proof,
        proven: Default::default(),
        section,
        entry,
    })
}

/// Statuses, events and CLI lines stay readable whatever a grant holds.
pub(super) const MAX_MESSAGE_CHARS: usize = 1024;

pub(super) fn cluster_creator_message(arn: &str) -> String {
    format!(
        "{} is the cluster creator, which EKS already maps to system:masters outside aws-auth; an aws-auth entry for it can lock it out: delete this grant",
        shown(arn)
    )
}

/// An unreadable mapping key, other than the grant's own, where EKS may find the grant's
/// principal: mapRoles decides before mapUsers, and either key can hold either kind of ARN. A
/// role already written to mapRoles is decided there already; a new one would silently override
/// whatever mapUsers holds for it.
pub(super) fn unreadable_holder<'r>(
    read: &'r AwsAuthRead,
    data: &BTreeMap<String, String>,
    c: &Candidate,
    in_aws_auth: bool,
) -> Option<(Section, &'r Finding)> {
    let other = match c.section {
        Section::MapRoles if !in_aws_auth => Section::MapUsers,
        Section::MapUsers => Section::MapRoles,
        _ => return None,
    };
    let f = read.first_blocking(other)?;
    let text = data.get(other.key())?;
    could_hold(text, &c.canonical).then_some((other, f))
}

/// Whether text that cannot be read exactly might still name `canonical` to EKS: `/NAME` appears
/// under Unicode case folding as a whole name, or an escape could spell anything.
pub(super) fn could_hold(text: &str, canonical: &str) -> bool {
    if text.contains('\\') {
        return true;
    }
    let name = canonical.rsplit('/').next().unwrap_or(canonical);
    let needle = format!("/{}", arn::fold_case(name));
    let hay = arn::fold_case(text);
    hay.match_indices(&needle).any(|(i, _)| {
        hay[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || "+=,.@_-".contains(c)))
    })
}

/// What an invalid grant's message says when it keeps its last applied entry.
pub(super) const KEPT: &str =
    "; the entry it last applied stays in aws-auth until the grant is fixed or deleted";

/// An invalid grant whose status says it was applied keeps its entry, so an edit that breaks a
/// grant does not lock its users out: its status then says Invalid with the kept entry's key and
/// principal, which finds it in the passes after (the ownership record decides whether this grant
/// holds it). Returns that key, the principal's key and the principal.
pub(super) fn last_applied(r: Reported) -> Option<(Section, String, String)> {
    let section = r.section.and_then(Section::from_key)?;
    let arn = r.canonical_arn?;
    if !r.holds {
        return None;
    }
    let key = match section {
        Section::MapAccounts => arn.to_string(),
        _ => arn::match_key(arn),
    };
    Some((section, key, arn.to_string()))
}

/// Phase 2: the grants oldest first (the oldest grant wins a principal), each with its
/// fingerprint. Each grant's sort key is looked up once, not at every comparison.
pub(super) fn oldest_first<'g, G: GrantRef>(
    grants: &'g [G],
    fp: &memo::Fingerprint,
) -> Vec<(&'g G, memo::GrantPrint)> {
    let mut order: Vec<(&G, memo::GrantPrint)> =
        grants.iter().zip(fp.grants.iter().copied()).collect();
    order.sort_by_cached_key(|&(g, _)| {
        let t = g.created();
        (t.is_none(), t, g.name())
    });
    order
}
